"""Sounds: one second of each class's sound (own pitch, timbre, rhythm, noise band) and a video's
soundtrack, mixed per second from its sounding objects plus low background noise.

`SOUNDS` maps each class name to its synthesis function; each returns n samples at SAMPLE_RATE
before loudness normalisation. Runs in the rendering worker processes.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from pipeline.data.synth.classes import CLASS_NAMES
from pipeline.data.synth.plans import SynthConfig, _Plan

SAMPLE_RATE = 16_000  # AVSBench / VGGish rate


# ---------------------------------------------------------------------------------------------
# Building blocks.

def _t(n: int) -> np.ndarray:
    return np.arange(n) / SAMPLE_RATE


def _harmonics(freq: np.ndarray | float, amps: tuple[float, ...], n: int) -> np.ndarray:
    """Sum of harmonics k * freq (freq may glide per sample) with amplitudes amps[k-1]."""
    f = np.broadcast_to(np.asarray(freq, dtype=float), (n,))
    phase = 2 * np.pi * np.cumsum(f) / SAMPLE_RATE
    out = np.zeros(n)
    for k, a in enumerate(amps, 1):
        if k * f.max() < 0.45 * SAMPLE_RATE:  # no aliasing
            out += a * np.sin(k * phase)
    return out


def _band_noise(rng: np.random.Generator, n: int, lo: float, hi: float) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    spec[(f < lo) | (f > hi)] = 0
    x = np.fft.irfft(spec, n)
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


def _decay(n: int, attack: float, decay: float) -> np.ndarray:
    t = _t(n)
    return (1 - np.exp(-t / attack)) * np.exp(-t / decay)


def _place(out: np.ndarray, event: np.ndarray, start: float) -> None:
    i = int(start * SAMPLE_RATE)
    m = min(len(event), len(out) - i)
    if m > 0:
        out[i : i + m] += event[:m]


# ---------------------------------------------------------------------------------------------
# Class sounds: one second (or n samples) of a class's sound, before loudness normalisation.

def _sound_dog(rng: np.random.Generator, n: int) -> np.ndarray:
    """2-3 short, noisy barks per second, pitch falling from ~300 Hz."""
    out = np.zeros(n)
    for start in np.sort(rng.uniform(0, 0.8, rng.integers(2, 4))):
        m = int(0.16 * SAMPLE_RATE)
        f = rng.uniform(260, 340) * (1 - 0.3 * _t(m) / 0.16)
        bark = _harmonics(f, (1, 0.7, 0.5, 0.35, 0.25), m) + 0.8 * _band_noise(rng, m, 900, 2600)
        _place(out, bark * _decay(m, 0.004, 0.05), start)
    return out


def _sound_cat(rng: np.random.Generator, n: int) -> np.ndarray:
    """One meow: a 0.5-0.7 s glide 650 -> ~900 -> 650 Hz with few harmonics."""
    out = np.zeros(n)
    dur = rng.uniform(0.5, 0.7)
    m = int(dur * SAMPLE_RATE)
    t = _t(m)
    f = rng.uniform(600, 700) * (1 + 0.4 * np.sin(np.pi * t / dur))
    _place(out, _harmonics(f, (1, 0.5, 0.25, 0.1), m) * np.sin(np.pi * t / dur) ** 1.5, rng.uniform(0.05, 0.25))
    return out


def _sound_bird(rng: np.random.Generator, n: int) -> np.ndarray:
    """4-7 quick chirps sweeping between 3 and 5 kHz."""
    out = np.zeros(n)
    m = int(0.05 * SAMPLE_RATE)
    for start in np.sort(rng.uniform(0, 0.9, rng.integers(4, 8))):
        f = np.linspace(*rng.uniform(3000, 5000, 2), m)
        _place(out, _harmonics(f, (1, 0.1), m) * np.hanning(m), start)
    return out


def _sound_baby(rng: np.random.Generator, n: int) -> np.ndarray:
    """Two sustained cries per second, ~470 Hz with vibrato and strong harmonics."""
    out = np.zeros(n)
    for start in (rng.uniform(0.0, 0.08), rng.uniform(0.5, 0.58)):
        dur = rng.uniform(0.35, 0.42)
        m = int(dur * SAMPLE_RATE)
        t = _t(m)
        f = rng.uniform(430, 520) * (1 + 0.03 * np.sin(2 * np.pi * 7 * t)) * (1 + 0.08 * np.sin(np.pi * t / dur))
        env = np.minimum(1, t / 0.03) * np.minimum(1, (dur - t) / 0.08)
        _place(out, _harmonics(f, (1, 0.9, 0.8, 0.6, 0.45, 0.3, 0.2), m) * env, start)
    return out


def _sound_guitar(rng: np.random.Generator, n: int) -> np.ndarray:
    """Two strummed chords per second (root 110-200 Hz), plucked partials decaying fast to slow."""
    out = np.zeros(n)
    root = rng.uniform(110, 200)
    for start in (rng.uniform(0, 0.05), rng.uniform(0.48, 0.55)):
        for j, ratio in enumerate((1, 1.5, 2, 2.52)):
            m = int(0.5 * SAMPLE_RATE)
            t = _t(m)
            phase = 2 * np.pi * root * ratio * t
            note = sum(np.sin(k * phase) * np.exp(-t * k / 0.25) / k for k in range(1, 8))
            _place(out, note * (1 - np.exp(-t / 0.002)), start + 0.012 * j)
    return out


def _sound_piano(rng: np.random.Generator, n: int) -> np.ndarray:
    """Four struck notes from the C-major octave 262-523 Hz, slightly inharmonic partials."""
    out = np.zeros(n)
    scale = np.array([261.6, 293.7, 329.6, 349.2, 392.0, 440.0, 493.9, 523.3])
    m = int(0.4 * SAMPLE_RATE)
    t = _t(m)
    for j in range(4):
        f = rng.choice(scale)
        note = sum(np.sin(2 * np.pi * k * f * np.sqrt(1 + 4e-4 * k * k) * t) * np.exp(-t * k / 0.35) / k
                   for k in range(1, 7))
        _place(out, note * (1 - np.exp(-t / 0.002)), 0.25 * j + rng.uniform(0, 0.02))
    return out


def _sound_violin(rng: np.random.Generator, n: int) -> np.ndarray:
    """A bowed tone held all second: 700-1000 Hz, 6 Hz vibrato, sawtooth-rich, some bow noise."""
    t = _t(n)
    f = rng.uniform(700, 1000) * (1 + 0.01 * np.sin(2 * np.pi * 6 * t))
    tone = _harmonics(f, tuple(1 / k for k in range(1, 11)), n) + 0.1 * _band_noise(rng, n, 2000, 6000)
    return tone * np.minimum(1, t / 0.08) * np.minimum(1, (t[-1] - t + 1 / SAMPLE_RATE) / 0.08)


def _sound_drum(rng: np.random.Generator, n: int) -> np.ndarray:
    """Four hits a second: a 120 -> 60 Hz thump plus a short noise crack."""
    out = np.zeros(n)
    m = int(0.2 * SAMPLE_RATE)
    t = _t(m)
    for j in range(4):
        f0 = rng.uniform(100, 130)
        thump = _harmonics(f0 * (0.5 + 0.5 * np.exp(-t / 0.04)), (1,), m) * np.exp(-t / 0.08)
        crack = 0.5 * _band_noise(rng, m, 200, 5000) * np.exp(-t / 0.02)
        _place(out, thump + crack, 0.25 * j + rng.uniform(0, 0.02))
    return out


def _sound_car(rng: np.random.Generator, n: int) -> np.ndarray:
    """A running engine: 35-55 Hz firing harmonics, 8-12 Hz throb, low rumble."""
    t = _t(n)
    engine = _harmonics(rng.uniform(35, 55), (1, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2, 0.15), n)
    throb = 1 + 0.3 * np.sin(2 * np.pi * rng.uniform(8, 12) * t)
    return engine * throb + 0.3 * _band_noise(rng, n, 20, 300)


def _sound_bell(rng: np.random.Generator, n: int) -> np.ndarray:
    """One strike ringing on: hum, prime, tierce, quint, nominal partials of a 1.5-1.9 kHz bell."""
    out = np.zeros(n)
    f = rng.uniform(1500, 1900)
    t = _t(n)
    partials = ((0.5, 0.6, 1.0), (1, 1, 0.7), (1.19, 0.6, 0.5), (1.5, 0.5, 0.4), (2.0, 0.5, 0.3), (2.74, 0.3, 0.2))
    ring = sum(a * np.sin(2 * np.pi * f * r * t) * np.exp(-t / tau) for r, a, tau in partials)
    _place(out, ring * (1 - np.exp(-t / 0.001)), rng.uniform(0, 0.2))
    return out


SOUNDS: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {  # (rng, n samples) -> samples
    "dog": _sound_dog, "cat": _sound_cat, "bird": _sound_bird, "baby": _sound_baby, "guitar": _sound_guitar,
    "piano": _sound_piano, "violin": _sound_violin, "drum": _sound_drum, "car": _sound_car, "bell": _sound_bell,
}


# ---------------------------------------------------------------------------------------------
# Mixing.

def _render_audio(rng: np.random.Generator, plan: _Plan, cfg: SynthConfig) -> np.ndarray:
    """(T * 16000,) float32: per second the sum of the sounding objects' sounds, plus noise."""
    n = plan.frames * SAMPLE_RATE
    audio = np.zeros(n)
    fade = np.minimum(1, np.minimum(np.arange(SAMPLE_RATE), np.arange(SAMPLE_RATE)[::-1]) / 80)  # 5 ms
    for t in range(plan.frames):
        for o in plan.objects:
            if o.sounding[t]:
                x = SOUNDS[CLASS_NAMES[o.cls]](rng, SAMPLE_RATE)
                gain = cfg.sound_rms * rng.uniform(0.6, 1.0) / (np.sqrt(np.mean(x**2)) + 1e-12)
                audio[t * SAMPLE_RATE : (t + 1) * SAMPLE_RATE] += gain * fade * x
    spec = np.fft.rfft(rng.standard_normal(n))
    spec /= np.sqrt(np.maximum(np.fft.rfftfreq(n, 1 / SAMPLE_RATE), 20.0))  # pink-ish: room hum, not hiss
    noise = np.fft.irfft(spec, n)
    audio += cfg.noise_rms * noise / np.sqrt(np.mean(noise**2))
    peak = np.abs(audio).max()
    if peak > 0.99:
        audio *= 0.99 / peak
    return audio.astype(np.float32)

