"""Read a video's soundtrack as the mono float waveform the audio encoders expect.

AVSBench ships `audio.wav` files that are often stereo and at 16 or 48 kHz; VGGish wants 16 kHz
mono. soundfile (libsndfile) reads wav/flac/ogg/mp3 at any rate and channel count; channels are
averaged and the rate changed with resampy's `kaiser_best` filter, in float64, exactly as
torchvggish's own `waveform_to_examples` does, so our features of a 48 kHz stereo file equal
torchvggish's (scipy's polyphase resampler, used before, moved the log-mel of a 48 kHz test
tone by up to 0.39).
Every failure is an `AudioError` whose message starts with a short kind ("audio missing",
"audio unreadable", "audio empty", "audio invalid") and ends with the path, so the manifest can
store it on a row and count the kinds.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from pipeline.common.errors import UserError

RESAMPLER = "resampy kaiser_best"  # recorded in the audio features' provenance


class AudioError(UserError, ValueError):
    """An audio file that is missing, unreadable, empty or holds non-finite samples."""


def _reason(exc: Exception) -> str:
    # libsndfile errors carry a short reason; their str() repeats the path.
    return (getattr(exc, "error_string", None) or str(exc) or type(exc).__name__).strip().rstrip(".")


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise AudioError(f"audio missing: {path}")


def audio_info(path: str | Path) -> tuple[int, int, float]:
    """(sample_rate, channels, seconds) from the file header, without decoding samples."""
    path = Path(path)
    _check_file(path)
    try:
        info = sf.info(str(path))
    except (RuntimeError, OSError) as exc:
        raise AudioError(f"audio unreadable ({_reason(exc)}): {path}") from exc
    if info.frames <= 0 or info.samplerate <= 0 or info.channels <= 0:
        raise AudioError(f"audio empty ({max(info.frames, 0)} samples): {path}")
    return int(info.samplerate), int(info.channels), info.frames / info.samplerate


def load_audio(path: str | Path, target_sr: int = 16000) -> np.ndarray:
    """(N,) float32 mono waveform at `target_sr`, N = ceil(samples * target_sr / file_rate)."""
    if not isinstance(target_sr, (int, np.integer)) or target_sr <= 0:
        raise ValueError(f"target_sr must be a positive integer, got {target_sr!r}")
    path = Path(path)
    _check_file(path)
    try:
        data, sr = sf.read(str(path), dtype="float64", always_2d=True)  # (N, C)
    except (RuntimeError, OSError) as exc:
        raise AudioError(f"audio unreadable ({_reason(exc)}): {path}") from exc
    if data.shape[0] == 0 or data.shape[1] == 0:
        raise AudioError(f"audio empty (0 samples): {path}")
    mono = data.mean(axis=1)  # (N,)
    if not np.isfinite(mono).all():
        raise AudioError(f"audio invalid (non-finite samples): {path}")
    if sr != target_sr:
        import resampy  # torchvggish's own dependency; imported here because numba makes it slow to load

        mono = resampy.resample(mono, int(sr), int(target_sr), filter="kaiser_best")
    return np.ascontiguousarray(mono, dtype=np.float32)
