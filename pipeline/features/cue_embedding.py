"""Cue lists -> (N_T, d) embeddings: each cue w becomes the sentence "This is a {w}."
(configurable), a frame's cues are padded or truncated to N_T slots with a validity mask, and each
distinct sentence is embedded once per run. Works with any encoder of pipeline.features.text_encoders
(imported by the features stage without loading one)."""
from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pipeline.features.text_encoders import TextEncoder


class CachedSentenceEncoder:
    """Wraps a text encoder so each distinct sentence is embedded once for the whole run."""

    def __init__(self, encoder, max_items: int = 1_000_000):
        self.encoder, self.max_items = encoder, max_items
        self.cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self.encoded = 0  # sentences actually sent to the model
        self.name, self.dim = encoder.name, encoder.dim

    def provenance(self) -> dict:
        return self.encoder.provenance()

    def encode_sentences(self, sentences: list[str]) -> np.ndarray:
        new = [s for s in dict.fromkeys(sentences) if s not in self.cache]
        if new:
            vectors = self.encoder.encode_sentences(new)
            self.encoded += len(new)
            for s, v in zip(new, vectors):
                self.cache[s] = np.asarray(v, dtype=np.float32)
            while len(self.cache) > self.max_items:
                self.cache.popitem(last=False)
        return np.stack([self.cache[s] for s in sentences]) if sentences else np.zeros((0, self.dim), np.float32)


def embed_cues(encoder: TextEncoder, cue_lists: list[list[str]], n_t: int = 4, template: str = "This is a {cue}.") -> tuple[np.ndarray, np.ndarray]:
    """(n, n_t, dim) embeddings and (n, n_t) validity of each frame's first n_t cues; every
    distinct cue is embedded once, empty slots are zeros with valid False."""
    if "{cue}" not in template:
        raise ValueError(f"the cue sentence template needs a {{cue}} placeholder, got {template!r}")
    if n_t < 1:
        raise ValueError(f"n_t must be at least 1, got {n_t}")
    kept = [list(cues or [])[:n_t] for cues in cue_lists]
    bad = sorted({repr(c) for cues in kept for c in cues if not isinstance(c, str) or not c.strip()})
    if bad:
        raise ValueError(f"cues must be non-empty strings, got {', '.join(bad)}")
    distinct = list(dict.fromkeys(c for cues in kept for c in cues))
    vectors = encoder.encode_sentences([template.format(cue=c) for c in distinct]) if distinct else np.zeros((0, encoder.dim), np.float32)
    if vectors.shape != (len(distinct), encoder.dim):
        raise ValueError(f"encoder {encoder.name} returned {vectors.shape} for {len(distinct)} sentences, expected ({len(distinct)}, {encoder.dim})")
    row = {c: i for i, c in enumerate(distinct)}
    emb = np.zeros((len(kept), n_t, encoder.dim), np.float32)  # (n, N_T, dim)
    valid = np.zeros((len(kept), n_t), bool)  # (n, N_T)
    for i, cues in enumerate(kept):
        for j, cue in enumerate(cues):
            emb[i, j], valid[i, j] = vectors[row[cue]], True
    return emb, valid
