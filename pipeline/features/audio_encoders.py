"""Audio feature encoders: one 128-d vector per second of video, as AVSBench feeds its models.

Front end. `LogMelFrontend` is torchvggish's `waveform_to_examples` (16 kHz mono; 25 ms periodic
Hann windows every 10 ms; |rfft(512)|; 64 HTK mel bands 125-7500 Hz from torchvggish's own
`spectrogram_to_mel_matrix`; log(mel + 0.01); non-overlapping 0.96 s examples of 96 x 64, an
incomplete tail dropped) vectorised over a batch of clips with `unfold` + `rfft`. The spectrum is
computed in float64 like the numpy reference (float32 FFT noise is ~1e-3 in the log of quiet
bands), then cast to float32; it matches the reference to <= 1e-4.

Per second. A T-second video gets T examples: example t covers [0.96 t, 0.96 (t+1)) s. Missing
tail examples repeat the last one (AVSBench's preprocess_s4.py); extra ones are dropped
(`fit_seconds`). Only the examples that survive are computed.

Encoders (`AudioEncoder`): `vggish`, torchvggish's network (`VGG`, `make_layers`) with weights
from a local file in the official `vggish-10086976.pth` layout (torchvggish's `vggish()` would
download them); `logmel`, a weight-free stand-in (mean and std of the 64 bands over each
example) for machines without VGGish weights.

PCA postprocessing default: off. AVSBench's configs set POSTPROCESS_LOG_MEL_WITH_PCA = False and
feed the raw embedding (after the last ReLU) to the model; the TeSO code reads its audio through
towhee's `audio_embedding.vggish` operator, a port of the same torchvggish network, which we
believe also returns the raw embedding (not verified here). `postprocess=True` applies the
AudioSet PCA whitening + 8-bit quantisation from a local `vggish_pca_params` file (.pth or .npz
with `pca_eigen_vectors`, `pca_means`), as torchvggish's Postprocessor does (which downloads).
"""
from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn
from torchvggish import mel_features, vggish_params
from torchvggish.torchvggish import VGG, make_layers

from pipeline.common.errors import UserError
from pipeline.common.identity import file_sha256
from pipeline.data.audio_io import RESAMPLER
from pipeline.features.backends import FEATURES_VERSION


SAMPLE_RATE = vggish_params.SAMPLE_RATE  # 16000
WINDOW = int(round(SAMPLE_RATE * vggish_params.STFT_WINDOW_LENGTH_SECONDS))  # 400 samples
HOP = int(round(SAMPLE_RATE * vggish_params.STFT_HOP_LENGTH_SECONDS))  # 160 samples
FFT = 2 ** int(np.ceil(np.log2(WINDOW)))  # 512, as mel_features.log_mel_spectrogram
FRAMES = vggish_params.NUM_FRAMES  # 96 frames per 0.96 s example
BANDS = vggish_params.NUM_BANDS  # 64
EMBEDDING_DIM = vggish_params.EMBEDDING_SIZE  # 128


class MissingWeightsError(UserError, FileNotFoundError):
    """An encoder that needs weights was given none (and random weights were not allowed)."""


def num_examples(n_samples: int) -> int:
    """How many whole 0.96 s examples `waveform_to_examples` makes from n_samples at 16 kHz."""
    if n_samples < WINDOW:
        return 0
    return (1 + (n_samples - WINDOW) // HOP) // FRAMES


def samples_for_examples(n: int) -> int:
    """The fewest samples that give n examples (15,360 n + 240)."""
    return (FRAMES * n - 1) * HOP + WINDOW


def fit_seconds(examples, seconds: int):
    """(E, ...) -> (seconds, ...): truncate, or pad by repeating the last example (AVSBench).

    Works on numpy arrays and torch tensors; E must be >= 1.
    """
    if seconds < 1:
        raise ValueError(f"seconds must be >= 1, got {seconds}")
    if len(examples) == 0:
        raise ValueError("cannot fit zero examples to seconds: the clip is shorter than one 0.96 s example")
    index = np.minimum(np.arange(seconds), len(examples) - 1)
    if isinstance(examples, torch.Tensor):
        return examples[torch.as_tensor(index, device=examples.device)]
    return examples[index]


class LogMelFrontend(nn.Module):
    """(B, samples) 16 kHz waveforms -> (B, E, 96, 64) float32 log-mel examples, E = examples of S."""

    def __init__(self):
        super().__init__()
        mel = mel_features.spectrogram_to_mel_matrix(
            num_mel_bins=BANDS,
            num_spectrogram_bins=FFT // 2 + 1,
            audio_sample_rate=SAMPLE_RATE,
            lower_edge_hertz=vggish_params.MEL_MIN_HZ,
            upper_edge_hertz=vggish_params.MEL_MAX_HZ,
        )
        self.register_buffer("window", torch.from_numpy(mel_features.periodic_hann(WINDOW)), persistent=False)
        self.register_buffer("mel_matrix", torch.from_numpy(mel), persistent=False)  # (257, 64) float64

    def log_mel(self, waves: torch.Tensor) -> torch.Tensor:
        """(B, S) -> (B, F, 64) float64 log-mel frames, F = 1 + (S - 400) // 160."""
        if waves.ndim != 2:
            raise ValueError(f"expected (batch, samples) waveforms, got shape {tuple(waves.shape)}")
        if waves.shape[1] < WINDOW:
            raise ValueError(f"waveforms have {waves.shape[1]} samples; one STFT frame needs {WINDOW}")
        frames = waves.to(self.window.device, torch.float64).unfold(-1, WINDOW, HOP)  # (B, F, 400)
        spectrum = torch.fft.rfft(frames * self.window, n=FFT)  # (B, F, 257) complex
        # |z| as a norm over (re, im): several times faster than complex abs() on CPU.
        spectrum = torch.linalg.vector_norm(torch.view_as_real(spectrum), dim=-1)  # (B, F, 257)
        return torch.log(spectrum @ self.mel_matrix + vggish_params.LOG_OFFSET)  # (B, F, 64)

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        log_mel = self.log_mel(waves)
        batch, n_frames, _ = log_mel.shape
        n = n_frames // FRAMES
        return log_mel[:, : n * FRAMES].reshape(batch, n, FRAMES, BANDS).float()  # (B, E, 96, 64)


class AudioEncoder(ABC):
    """Per-second audio embeddings for a batch of clips.

    `encode(waveforms, seconds)`: float 16 kHz mono clips and each video's length in seconds ->
    one (seconds, dim) float32 array per clip. A clip shorter than one example (0.975 s) is an
    error. Subclasses embed a flat (N, 96, 64) batch of examples in `_embed`.
    """

    name: str
    dim: int = EMBEDDING_DIM

    def __init__(self, device: str = "cpu", batch_size: int = 64):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.frontend = LogMelFrontend().to(self.device)

    @abstractmethod
    def provenance(self) -> dict:
        """What determines the features: encoder name, weights identity, settings, version."""

    @abstractmethod
    def _embed(self, examples: torch.Tensor) -> torch.Tensor:
        """(N, 96, 64) log-mel examples on self.device -> (N, dim)."""

    def encode(self, waveforms: Sequence, seconds: Sequence[int]) -> list[np.ndarray]:
        if len(waveforms) != len(seconds):
            raise ValueError(f"{len(waveforms)} waveforms but {len(seconds)} lengths in seconds")
        waves = [_as_mono_tensor(w, i) for i, w in enumerate(waveforms)]
        counts = []  # examples actually computed per clip
        for i, (w, t) in enumerate(zip(waves, seconds)):
            if int(t) != t or t < 1:
                raise ValueError(f"clip {i}: seconds must be a positive integer, got {t!r}")
            have = num_examples(len(w))
            if have == 0:
                raise ValueError(
                    f"clip {i}: {len(w)} samples is shorter than one VGGish example "
                    f"({samples_for_examples(1)} samples at {SAMPLE_RATE} Hz)"
                )
            counts.append(min(have, int(t)))
        out: list[np.ndarray | None] = [None] * len(waves)
        # Similar lengths share a batch so little padding is transformed.
        order = sorted(range(len(waves)), key=lambda i: counts[i])
        for chunk in _chunks(order, counts, self.batch_size):
            cropped = [waves[i][: samples_for_examples(counts[i])] for i in chunk]  # only what is used
            embeddings = self._embed_clips(cropped, [counts[i] for i in chunk])
            for i, emb in zip(chunk, embeddings):
                out[i] = fit_seconds(emb, int(seconds[i]))
        return out

    @torch.inference_mode()
    def _embed_clips(self, waves: list[torch.Tensor], counts: list[int]) -> list[np.ndarray]:
        batch = nn.utils.rnn.pad_sequence([w.double() for w in waves], batch_first=True).to(self.device)  # (B, S)
        examples = self.frontend(batch)  # (B, E, 96, 64); E >= every count
        flat = torch.cat([examples[b, :n] for b, n in enumerate(counts)])  # (sum counts, 96, 64)
        embedded = self._embed(flat).float().cpu().numpy()  # (sum counts, dim)
        return np.split(embedded, np.cumsum(counts)[:-1])

    def _frontend_provenance(self) -> dict:
        return {
            "sample_rate": SAMPLE_RATE,
            "window": WINDOW,
            "hop": HOP,
            "fft": FFT,
            "bands": BANDS,
            "mel_hz": [vggish_params.MEL_MIN_HZ, vggish_params.MEL_MAX_HZ],
            "log_offset": vggish_params.LOG_OFFSET,
            "example_frames": FRAMES,
            "per_second": "example t = [0.96t, 0.96(t+1)) s; pad by repeating the last, truncate extra",
            "resampler": RESAMPLER,
        }


class VGGishEncoder(AudioEncoder):
    """torchvggish's VGGish network with local weights; 128-d raw embedding per second by default."""

    name = "vggish"

    def __init__(
        self,
        weights_path: str | None = None,
        allow_random_weights: bool = False,
        seed: int = 0,
        postprocess: bool = False,
        pca_params_path: str | None = None,
        device: str = "cpu",
        batch_size: int = 64,
    ):
        super().__init__(device, batch_size)
        self.postprocess = postprocess
        self.weights_path = str(weights_path) if weights_path else None
        self.seed = seed
        # torchvggish's own Postprocessor downloads its PCA file, so PCA is applied here instead.
        if weights_path is not None and Path(weights_path).is_file():
            self.weights = file_sha256(weights_path)
            self.network = _vggish_network(seed)
            state = torch.load(weights_path, map_location="cpu", weights_only=True)
            try:
                self.network.load_state_dict(state)
            except RuntimeError as e:
                raise ValueError(f"{weights_path} is not a VGGish state dict in the vggish-10086976.pth layout: {e}") from e
        elif allow_random_weights:
            warnings.warn(
                f"VGGish weights {'not given' if weights_path is None else f'not found at {weights_path}'}; "
                f"using RANDOM weights (seed {seed}). Features carry no audio semantics.",
                stacklevel=2,
            )
            self.weights = f"random seed {seed}"
            self.network = _vggish_network(seed)
        else:
            where = "no weights_path was given" if weights_path is None else f"{weights_path} does not exist"
            raise MissingWeightsError(
                f"VGGish needs the vggish-10086976.pth state dict but {where}; set the audio encoder's "
                "weights path, use the weight-free 'logmel' encoder, or allow random weights explicitly"
            )
        # channels_last: oneDNN's convolutions run ~25% faster in NHWC on CPU; same numbers.
        self.network.to(self.device, memory_format=torch.channels_last).eval()
        self.pca_sha256 = None
        if postprocess:
            if pca_params_path is None or not Path(pca_params_path).is_file():
                raise MissingWeightsError(f"postprocess=True needs a local vggish_pca_params file, got {pca_params_path!r}")
            matrix, means = _load_pca(pca_params_path)
            self.pca_matrix = matrix.to(self.device)  # (128, 128)
            self.pca_means = means.to(self.device)  # (128,)
            self.pca_sha256 = file_sha256(pca_params_path)

    def provenance(self) -> dict:
        return {
            "encoder": self.name,
            "weights": self.weights,
            "weights_path": self.weights_path,
            "postprocess": self.postprocess,
            "pca_params_sha256": self.pca_sha256,
            "frontend": self._frontend_provenance(),
            "version": FEATURES_VERSION,
        }

    def _embed(self, examples: torch.Tensor) -> torch.Tensor:
        examples = examples[:, None].contiguous(memory_format=torch.channels_last)  # (N, 1, 96, 64)
        embedding = self.network(examples)  # (N, 128) after the last ReLU
        if self.postprocess:
            embedding = pca_quantize(embedding, self.pca_matrix, self.pca_means)
        return embedding


def _vggish_network(seed: int) -> VGG:
    """torchvggish's VGG (no postprocessor), initialised from `seed` without touching the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return VGG(make_layers(), postprocess=False)


def pca_quantize(embedding: torch.Tensor, matrix: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """AudioSet postprocessing: PCA whitening, clip to [-2, 2], quantise to 0..255. (N, 128) -> (N, 128)."""
    projected = (embedding - means) @ matrix.T
    low, high = vggish_params.QUANTIZE_MIN_VAL, vggish_params.QUANTIZE_MAX_VAL
    return torch.round((projected.clamp(low, high) - low) * (255.0 / (high - low)))


class LogMelStatsEncoder(AudioEncoder):
    """Weight-free 128-d per-second embedding: mean and std (ddof 0) of the 64 log-mel bands over
    the example's 96 frames. Deterministic; for machines without VGGish weights."""

    name = "logmel"

    def provenance(self) -> dict:
        return {
            "encoder": self.name,
            "weights": "none",
            "statistic": "mean and std of 64 log-mel bands over each 0.96 s example",
            "frontend": self._frontend_provenance(),
            "version": FEATURES_VERSION,
        }

    def _embed(self, examples: torch.Tensor) -> torch.Tensor:
        std, mean = torch.std_mean(examples, dim=1, correction=0)  # (N, 64) each
        return torch.cat([mean, std], dim=1)  # (N, 128)


def _as_mono_tensor(wave, index: int) -> torch.Tensor:
    tensor = torch.as_tensor(wave)
    if tensor.ndim != 1:
        raise ValueError(f"clip {index}: expected a mono 1-D waveform, got shape {tuple(tensor.shape)}")
    if not tensor.is_floating_point():
        raise ValueError(f"clip {index}: expected float samples in [-1, 1], got dtype {tensor.dtype}")
    if not torch.isfinite(tensor).all():
        raise ValueError(f"clip {index}: waveform contains NaN or inf")
    return tensor


def _chunks(order: list[int], counts: list[int], budget: int):
    """Consecutive groups of clip indices holding at most `budget` examples (at least one clip)."""
    chunk, total = [], 0
    for i in order:
        if chunk and total + counts[i] > budget:
            yield chunk
            chunk, total = [], 0
        chunk.append(i)
        total += counts[i]
    if chunk:
        yield chunk


def _load_pca(path) -> tuple[torch.Tensor, torch.Tensor]:
    """(matrix (128, 128), means (128,)) from a .npz (TF release) or .pth (torchvggish release)."""
    if str(path).endswith(".npz"):
        params = dict(np.load(path))
    else:
        # The torchvggish file pickles numpy arrays; allow exactly numpy's array reconstruction.
        multiarray = (np._core if hasattr(np, "_core") else np.core).multiarray  # numpy 2 / 1

        allowed = [
            (multiarray._reconstruct, "numpy.core.multiarray._reconstruct"),
            multiarray._reconstruct,
            np.ndarray,
            np.dtype,
            np.dtypes.Float32DType,
            np.dtypes.Float64DType,
        ]
        with torch.serialization.safe_globals(allowed):
            params = torch.load(path, map_location="cpu", weights_only=True)
    try:
        matrix = torch.as_tensor(np.asarray(params[vggish_params.PCA_EIGEN_VECTORS_NAME]), dtype=torch.float32)
        means = torch.as_tensor(np.asarray(params[vggish_params.PCA_MEANS_NAME]), dtype=torch.float32).reshape(-1)
    except KeyError as e:
        raise ValueError(f"{path} lacks {e}; expected keys pca_eigen_vectors and pca_means") from e
    if matrix.shape != (EMBEDDING_DIM, EMBEDDING_DIM) or means.shape != (EMBEDDING_DIM,):
        raise ValueError(f"{path}: PCA shapes {tuple(matrix.shape)}, {tuple(means.shape)}; expected (128, 128), (128,)")
    return matrix, means
