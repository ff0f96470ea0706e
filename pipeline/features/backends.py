"""The audio and text encoders by name: how each is built from the config and what identifies
its features in a cache fingerprint.

`features.audio.encoder` and `features.text.encoder` are checked against AUDIO_ENCODERS and
TEXT_ENCODERS when the config is loaded. To add an encoder, write its class
(pipeline.features.audio_encoders / text_encoders), subclass the backend here and register it.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.common.identity import file_sha256, model_identity
from pipeline.common.registry import Registry

if TYPE_CHECKING:
    from pipeline.config import Config
    from pipeline.features.text_encoders import TextEncoder


# -- audio ------------------------------------------------------------------------------------
FEATURES_VERSION = 1  # bump when an audio encoder's features for the same audio and weights change


class AudioEncoderBackend:
    name: str

    def build(self, cfg: Config):
        raise NotImplementedError

    def weights_id(self, cfg: Config) -> str:
        """The encoder weights' identity, known without loading the network."""
        return "none"


class LogMel(AudioEncoderBackend):
    """Weight-free log-mel statistics (the CPU demo)."""

    name = "logmel"

    def build(self, cfg: Config):
        from pipeline.features.audio_encoders import LogMelStatsEncoder  # torch + torchvggish

        return LogMelStatsEncoder(device=cfg.features.device, batch_size=cfg.features.audio.batch_size)


class VGGish(AudioEncoderBackend):
    """The paper's VGGish, from local weights."""

    name = "vggish"

    def build(self, cfg: Config):
        from pipeline.features.audio_encoders import VGGishEncoder  # torch + torchvggish

        a = cfg.features.audio
        return VGGishEncoder(
            weights_path=str(a.weights) if a.weights else None,
            allow_random_weights=a.allow_random_weights,
            seed=a.seed,
            postprocess=a.postprocess,
            pca_params_path=str(a.pca_params) if a.pca_params else None,
            device=cfg.features.device,
            batch_size=a.batch_size,
        )

    def weights_id(self, cfg: Config) -> str:
        a = cfg.features.audio
        if a.weights is not None and Path(a.weights).is_file():
            return file_sha256(Path(a.weights))
        if a.allow_random_weights:
            return f"random seed {a.seed}"
        return f"missing: {a.weights}"  # the encoder itself raises the clear error when it is built


AUDIO_ENCODERS: Registry[AudioEncoderBackend] = Registry("audio encoder")
for _backend in (LogMel(), VGGish()):
    AUDIO_ENCODERS.register(_backend.name, _backend)


# -- text -------------------------------------------------------------------------------------
class TextEncoderBackend:
    name: str

    def build(self, cfg: Config) -> TextEncoder:
        raise NotImplementedError

    def identity(self, cfg: Config) -> dict:
        t = cfg.features.text
        return {
            "model": model_identity(str(t.path)) if t.path else "bundled-default",
            "tokenizer": model_identity(str(t.tokenizer)) if t.tokenizer else None,
        }


class SentenceTransformers(TextEncoderBackend):
    name = "sentence-transformers"

    def build(self, cfg: Config):
        from pipeline.features.text_encoders import SentenceTransformerEncoder  # torch + sentence-transformers

        t = cfg.features.text
        return SentenceTransformerEncoder(str(t.path) if t.path else None, device=cfg.features.device, batch_size=t.batch_size)


class CLIP(TextEncoderBackend):
    name = "clip"

    def build(self, cfg: Config):
        from pipeline.features.text_encoders import CLIPTextEncoder  # torch + transformers

        t = cfg.features.text
        return CLIPTextEncoder(str(t.path) if t.path else None, device=cfg.features.device, batch_size=t.batch_size)


class ImageBind(TextEncoderBackend):
    name = "imagebind"

    def build(self, cfg: Config):
        from pipeline.features.text_encoders import ImageBindEncoder  # torch + transformers

        t = cfg.features.text
        return ImageBindEncoder(
            str(t.path) if t.path else None, str(t.tokenizer) if t.tokenizer else None,
            device=cfg.features.device, batch_size=t.batch_size,
        )


TEXT_ENCODERS: Registry[TextEncoderBackend] = Registry("text encoder")
for _backend in (SentenceTransformers(), CLIP(), ImageBind()):
    TEXT_ENCODERS.register(_backend.name, _backend)
