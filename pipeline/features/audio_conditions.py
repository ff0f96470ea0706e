"""Audio conditions for the audio-control test (TeSO paper, Table 4).

The same trained model is evaluated with its audio replaced: `normal` (unchanged), `mute` (an
all-zero waveform of the same length), and noise-only audio: white Gaussian noise "at 10 dB" and
"at 40 dB" in place of the clip (`wgn_10db`, `wgn_40db`, the paper's test). A model that truly
listens should drop sharply. The additive reading (the clip plus noise at that SNR) is kept under
its own names, `wgn_10db_added` and `wgn_40db_added`. Conditions act on the waveform, before the audio
encoder, so every condition goes through the same feature path and is cached as a feature variant.

What "white Gaussian noise at X dB" means. The dB level is relative to the clip's own power: the
noise has the power the clip's power / 10^(X/10), as at a signal-to-noise ratio of X dB, i.e.

    P_signal = mean(clean ** 2)                 (over the whole clip, float64)
    P_noise  = P_signal / 10 ** (snr_db / 10)
    noisy    = clean + sqrt(P_noise) * g / rms(g),   g ~ N(0, 1) i.i.d. per sample

`g` is rescaled to unit mean square, so the noise in the output has exactly P_noise and
`measured_snr_db(clean, noisy)` returns snr_db (up to float32 rounding), even on short clips.
No clipping is applied (clipping would change the SNR); VGGish does not need [-1, 1].
`mode="replace"` (the paper's noise-only audio) returns only the noise term: no signal is left,
at 10 dB a louder noise than at 40 dB. `mode="add"` returns the sum above, under which 40 dB is a
mild perturbation and 10 dB a strong one. The mode is part of the condition (and of its
features' fingerprint).

A silent clip (P_signal == 0) has no defined SNR: noise scaled to it is zero, so the clip comes
back unchanged (all zeros) in both modes, and `measured_snr_db` of such a pair is +inf.

Determinism: the noise of a clip depends only on (condition seed, clip key) via
`np.random.default_rng([seed, sha256(key)])`, not on the order clips are processed in or on the
process; the 10 dB and 40 dB conditions with the same seed use the same noise shape, scaled.
"""
from __future__ import annotations

import hashlib
import math
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from pipeline.common.names import check_name


class AudioCondition(BaseModel):
    """One audio-control condition, as the config names it (`features.audio.conditions`). `name` is
    the feature variant it is stored under; its whole definition is part of that variant's fingerprint."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    kind: Literal["normal", "mute", "wgn"]
    snr_db: float | None = None  # wgn only
    seed: int = Field(0, ge=0)  # wgn only: base seed of the per-clip noise
    mode: Literal["add", "replace"] = "add"  # wgn only: "add" noise at snr_db, or "replace" the clip by that noise

    @model_validator(mode="after")
    def _snr_fits_kind(self) -> "AudioCondition":
        check_name("audio condition name", self.name)  # names files of the evaluation and report
        if self.kind == "wgn" and (self.snr_db is None or not math.isfinite(self.snr_db)):
            raise ValueError(f"audio condition {self.name!r}: wgn needs a finite snr_db, got {self.snr_db!r}")
        if self.kind != "wgn" and self.snr_db is not None:
            raise ValueError(f"audio condition {self.name!r}: snr_db only applies to kind 'wgn'")
        return self

    @property
    def label(self) -> str:
        """How reports name it: "muted", "noise only 10 dB" (replace mode), "noise 10 dB added"."""
        if self.kind == "mute":
            return "muted"
        if self.kind == "wgn":
            return f"noise only {self.snr_db:g} dB" if self.mode == "replace" else f"noise {self.snr_db:g} dB added"
        return self.name


DEFAULT_CONDITIONS: tuple[AudioCondition, ...] = (
    AudioCondition(name="normal", kind="normal"),
    AudioCondition(name="mute", kind="mute"),
    AudioCondition(name="wgn_10db", kind="wgn", snr_db=10.0, mode="replace"),
    AudioCondition(name="wgn_40db", kind="wgn", snr_db=40.0, mode="replace"),
    AudioCondition(name="wgn_10db_added", kind="wgn", snr_db=10.0, mode="add"),
    AudioCondition(name="wgn_40db_added", kind="wgn", snr_db=40.0, mode="add"),
)


def apply_condition(wave: np.ndarray, cond: AudioCondition, key: str) -> np.ndarray:
    """The clip under `cond` as float32 of the same length. `key` names the clip (e.g. its uid)
    and seeds its noise."""
    wave = np.asarray(wave)
    if wave.ndim != 1:
        raise ValueError(f"expected a mono 1-D waveform, got shape {wave.shape}")
    if not np.issubdtype(wave.dtype, np.floating):
        raise ValueError(f"expected float samples, got dtype {wave.dtype}")
    if not np.isfinite(wave).all():
        raise ValueError(f"waveform of {key!r} contains NaN or inf")
    if cond.kind == "normal":
        return wave.astype(np.float32, copy=True)
    if cond.kind == "mute":
        return np.zeros(len(wave), dtype=np.float32)
    clean = wave.astype(np.float64)
    signal_power = float(np.mean(clean**2)) if len(clean) else 0.0
    if signal_power == 0.0:
        return wave.astype(np.float32, copy=True)  # silent: no SNR to honour, see module docstring
    noise = _clip_rng(cond.seed, key).standard_normal(len(clean))
    noise *= math.sqrt(signal_power / 10 ** (cond.snr_db / 10) / np.mean(noise**2))
    out = noise if cond.mode == "replace" else clean + noise
    return out.astype(np.float32)


def measured_snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    """10 log10(mean(clean^2) / mean((noisy - clean)^2)) in float64; +inf when they are equal."""
    clean = np.asarray(clean, dtype=np.float64)
    noisy = np.asarray(noisy, dtype=np.float64)
    if clean.shape != noisy.shape:
        raise ValueError(f"clean and noisy shapes differ: {clean.shape} vs {noisy.shape}")
    noise_power = float(np.mean((noisy - clean) ** 2))
    if noise_power == 0.0:
        return math.inf
    signal_power = float(np.mean(clean**2))
    if signal_power == 0.0:
        return -math.inf
    return 10 * math.log10(signal_power / noise_power)


def _clip_rng(seed: int, key: str) -> np.random.Generator:
    # sha256, not hash(): Python's string hash changes between processes.
    digest = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "little")
    return np.random.default_rng([seed, digest])
