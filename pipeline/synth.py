"""Synthetic audio-visual dataset in the AVSBench-semantic layout: the testbed for TeSO's claim.

Why: real AVSBench data is never on these machines, and TeSO's point (vision alone cannot tell
which object is sounding; audio plus text can) needs data where that holds by construction.
Each scene shows 1-3 sound-capable objects of ten classes (dog, cat, bird, baby, guitar, piano,
violin, drum, car, bell; drawn with PIL on a textured background, each with its own shape,
colours and texture). Each second a varying subset of them sounds (at most one in v1s), and the
second's audio is the sum of the sounding objects' class sounds (own pitch, timbre, rhythm,
noise band) plus low background noise. Masks mark only the sounding objects. Every object also
has a visible state (a dog's open mouth, a car's headlights) drawn for most sounding and some
silent objects, so a frame alone is an unreliable witness. A reference description per frame
names every visible object, its colour, position and drawn state (what a captioner would see,
not the ground truth).

Layout (DESIGN.md section 4): `metadata.csv` (vid `synth_{label}_{split}_{i:04d}`, uid
`{vid}_{s_min}_{s_sec}`, a_obj = the class sounding in most seconds), `label2idx.json`, per
video `{label}/{uid}/frames/{i}.jpg`, `labels_rgb/{i}.png`, `labels_semantic/{i}.png`,
`audio.wav` (16 kHz mono PCM_16, T seconds); in v1s train only frame 0 has masks. Also
`scene_descriptions.jsonl` (label, uid, frame, description, visible, sounding) and AVS-V3-style
seen/unseen split files under `v3/` (rules in `_v3_splits`).

Determinism: video i of (subset, split) draws everything from
`SeedSequence([seed, stream tag, subset, split, i])`; its main sounding class comes from a
shuffled class cycle per (subset, split), so any 10 consecutive videos cover every class. Scenes
are planned in the parent and rendered by a pool whose scheduling cannot change a byte. The
dataset is built in a hidden sibling folder and renamed into place, so a crash never leaves a
half-written dataset behind.
"""
from __future__ import annotations

import csv
import filecmp
import json
import multiprocessing
import os
import shutil
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf
from PIL import Image, ImageDraw
from scipy.ndimage import zoom
from tqdm import tqdm

from pipeline.palette import index_to_rgb

SAMPLE_RATE = 16_000  # AVSBench / VGGish rate
SUBSETS = ("v1s", "v1m", "v2")
SPLITS = ("train", "val", "test")
FRAMES = {"v1s": 5, "v1m": 5, "v2": 10}  # one frame per second, as the real release
SHOTS = (1, 3, 5)  # AVS-V3 few-shot splits
METADATA_COLUMNS = ("vid", "uid", "s_min", "s_sec", "a_obj", "split", "label")
_VIDEO_STREAM, _CYCLE_STREAM, _V3_STREAM = 0, 1, 2  # tags that keep the random streams apart

RGB = tuple[int, int, int]


@dataclass
class SynthConfig:
    seed: int = 0
    size: int = 160  # frame height = width in pixels
    videos: dict[str, dict[str, int]] = field(
        default_factory=lambda: {
            "v1s": {"train": 60, "val": 15, "test": 15},
            "v1m": {"train": 40, "val": 10, "test": 10},
            "v2": {"train": 100, "val": 25, "test": 25},
        }
    )
    max_objects: int = 3  # scenes show 1..max_objects sound-capable objects
    state_if_sounding: float = 0.8  # a sounding object usually shows its state ...
    state_if_silent: float = 0.15  # ... and a silent one sometimes does: vision alone is unreliable
    sound_rms: float = 0.1  # loudness of one sounding object (before a random 0.6-1.0 gain)
    noise_rms: float = 0.005  # background noise, ~26 dB under an object: audible, never a source
    unseen_classes: tuple[str, ...] = ("cat", "violin", "bell")  # AVS-V3 classes held out of seen training
    jpeg_quality: int = 90  # frames are JPEG as in the release
    workers: int = 2  # rendering processes; the output does not depend on it


# ---------------------------------------------------------------------------------------------
# Drawing: every object is drawn in its own unit square ([-0.5, 0.5]^2, y down) onto the frame
# and, with the same geometry, onto the class-index mask.

BLACK: RGB = (20, 20, 20)
WHITE: RGB = (245, 245, 240)
DARK_RED: RGB = (120, 20, 30)
PINK: RGB = (240, 120, 140)
SKIN: RGB = (250, 215, 185)
WOOD: RGB = (110, 70, 35)
ORANGE: RGB = (245, 150, 30)
YELLOW: RGB = (255, 235, 90)
GLASS: RGB = (170, 210, 235)


def _shade(rgb: RGB, factor: float) -> RGB:
    return tuple(int(np.clip(c * factor, 0, 255)) for c in rgb)  # type: ignore[return-value]


class _Painter:
    """Draws one object's parts on the frame and its mask; `part=False` marks props and effects
    (a branch, headlight beams, motion marks) that are drawn but are not the object."""

    def __init__(self, frame: ImageDraw.ImageDraw, mask: ImageDraw.ImageDraw, mask_value: int,
                 centre: np.ndarray, scale: float, angle: float, flip: bool):
        self.frame, self.mask, self.mask_value = frame, mask, mask_value
        self.centre, self.scale, self.flip = centre, scale, flip
        self.rotate(angle, (0.0, 0.0))

    def rotate(self, degrees: float, pivot: tuple[float, float]) -> None:
        a = np.deg2rad(degrees)
        self.rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        self.pivot = np.asarray(pivot, dtype=float)

    def _map(self, pts) -> list[tuple[float, float]]:
        p = np.asarray(pts, dtype=float).reshape(-1, 2)
        p = (p - self.pivot) @ self.rot.T + self.pivot
        if self.flip:
            p[:, 0] = -p[:, 0]
        return [tuple(q) for q in (p * self.scale + self.centre).tolist()]

    def polygon(self, pts, fill: RGB, outline: RGB | None = None, part: bool = True) -> None:
        xy = self._map(pts)
        self.frame.polygon(xy, fill=fill, outline=outline)
        if part:
            self.mask.polygon(xy, fill=self.mask_value, outline=self.mask_value)

    def ellipse(self, x: float, y: float, rx: float, ry: float, fill: RGB, outline: RGB | None = None,
                part: bool = True) -> None:
        a = np.linspace(0, 2 * np.pi, 28, endpoint=False)  # polygons so rotation and flips apply
        self.polygon(np.stack([x + rx * np.cos(a), y + ry * np.sin(a)], 1), fill, outline, part)

    def rect(self, x0: float, y0: float, x1: float, y1: float, fill: RGB, outline: RGB | None = None,
             part: bool = True) -> None:
        self.polygon([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], fill, outline, part)

    def line(self, pts, fill: RGB, width: float, part: bool = True) -> None:
        xy = self._map(pts)
        w = max(1, round(width * self.scale))
        self.frame.line(xy, fill=fill, width=w, joint="curve")
        if part:
            self.mask.line(xy, fill=self.mask_value, width=w)


def _draw_dog(p: _Painter, c: RGB, shown: bool, frame: int) -> None:
    dark = _shade(c, 0.65)
    p.line([(-0.33, 0.05), (-0.47, -0.18)], dark, 0.06)  # tail
    for x in (-0.27, -0.14, 0.08, 0.2):
        p.rect(x - 0.035, 0.18, x + 0.035, 0.45, dark)  # legs
    p.ellipse(-0.05, 0.1, 0.32, 0.17, c)  # body
    p.ellipse(-0.15, 0.06, 0.08, 0.05, dark)  # spots
    p.ellipse(0.06, 0.15, 0.06, 0.04, dark)
    p.ellipse(0.28, -0.15, 0.16, 0.14, c)  # head
    p.ellipse(0.42, -0.08, 0.09, 0.065, _shade(c, 0.9))  # snout
    p.ellipse(0.5, -0.1, 0.03, 0.025, BLACK)  # nose
    p.ellipse(0.3, -0.2, 0.025, 0.025, BLACK)  # eye
    p.ellipse(0.2, -0.2, 0.06, 0.12, dark)  # ear
    if shown:
        p.polygon([(0.34, -0.04), (0.54, -0.02), (0.44, 0.12)], DARK_RED)  # open mouth
        p.ellipse(0.44, 0.06, 0.04, 0.03, PINK)  # tongue
    else:
        p.line([(0.36, -0.03), (0.5, -0.03)], BLACK, 0.015)


def _draw_cat(p: _Painter, c: RGB, shown: bool, frame: int) -> None:
    dark = _shade(c, 0.6)
    p.line([(0.18, 0.38), (0.38, 0.32), (0.42, 0.08)], c, 0.06)  # tail
    p.ellipse(0, 0.18, 0.24, 0.27, c)  # body
    for y in (0.05, 0.17, 0.29):  # stripes
        p.line([(-0.21, y), (-0.08, y + 0.03)], dark, 0.035)
        p.line([(0.21, y), (0.08, y + 0.03)], dark, 0.035)
    for s in (-1, 1):
        p.polygon([(0.17 * s, -0.26), (0.14 * s, -0.46), (0.03 * s, -0.33)], c)  # ears
    p.ellipse(0, -0.2, 0.18, 0.15, c)  # head
    for s in (-1, 1):
        p.ellipse(0.07 * s, -0.24, 0.035, 0.03, (90, 190, 80))  # eyes
        p.line([(0.06 * s, -0.13), (0.27 * s, -0.17)], BLACK, 0.01)  # whiskers
        p.line([(0.06 * s, -0.11), (0.27 * s, -0.07)], BLACK, 0.01)
    if shown:
        p.ellipse(0, -0.1, 0.06, 0.055, DARK_RED)  # open mouth
    else:
        p.line([(-0.04, -0.1), (0, -0.08), (0.04, -0.1)], BLACK, 0.015)


def _draw_bird(p: _Painter, c: RGB, shown: bool, frame: int) -> None:
    dark = _shade(c, 0.6)
    p.line([(-0.5, 0.32), (0.5, 0.26)], WOOD, 0.06, part=False)  # the branch it perches on
    p.line([(-0.04, 0.17), (-0.06, 0.3)], ORANGE, 0.025)  # legs
    p.line([(0.06, 0.17), (0.05, 0.29)], ORANGE, 0.025)
    p.polygon([(-0.2, 0.02), (-0.48, -0.08), (-0.45, 0.14)], dark)  # tail
    p.ellipse(0, 0.05, 0.25, 0.16, c)  # body
    p.ellipse(-0.04, 0.03, 0.15, 0.08, dark)  # wing
    p.line([(-0.15, 0.02), (0.06, 0.04)], _shade(c, 0.4), 0.015)  # feathers
    p.line([(-0.13, 0.07), (0.05, 0.08)], _shade(c, 0.4), 0.015)
    p.ellipse(0.22, -0.12, 0.12, 0.11, c)  # head
    p.ellipse(0.26, -0.15, 0.025, 0.025, BLACK)  # eye
    if shown:  # beak open
        p.polygon([(0.31, -0.15), (0.49, -0.23), (0.33, -0.11)], ORANGE)
        p.polygon([(0.32, -0.1), (0.48, -0.02), (0.31, -0.07)], ORANGE)
    else:
        p.polygon([(0.32, -0.15), (0.48, -0.11), (0.32, -0.07)], ORANGE)


def _draw_baby(p: _Painter, c: RGB, shown: bool, frame: int) -> None:
    for s in (-1, 1):
        p.ellipse(0.25 * s, 0.15, 0.08, 0.13, SKIN)  # arms
    p.ellipse(0, 0.22, 0.24, 0.24, c)  # clothes
    for y in (0.12, 0.22, 0.32):
        p.ellipse(0, y, 0.02, 0.02, WHITE)  # buttons
    p.ellipse(0, -0.18, 0.2, 0.2, SKIN)  # head
    p.ellipse(0, -0.35, 0.12, 0.05, (110, 70, 40))  # hair
    if shown:  # crying: squeezed eyes, open mouth, tears
        for s in (-1, 1):
            p.line([(0.11 * s, -0.23), (0.05 * s, -0.2)], BLACK, 0.02)
            p.ellipse(0.13 * s, -0.12, 0.025, 0.045, (90, 160, 240))
        p.ellipse(0, -0.08, 0.08, 0.065, DARK_RED)
    else:
        for s in (-1, 1):
            p.ellipse(0.08 * s, -0.21, 0.025, 0.025, BLACK)
        p.line([(-0.05, -0.1), (0, -0.08), (0.05, -0.1)], BLACK, 0.015)


def _draw_guitar(p: _Painter, c: RGB, shown: bool, frame: int) -> None:
    rim = _shade(c, 0.5)
    p.rect(-0.035, -0.47, 0.035, -0.05, WOOD)  # neck
    p.rect(-0.055, -0.5, 0.055, -0.42, _shade(WOOD, 0.6))  # head
    p.ellipse(0, 0.22, 0.22, 0.2, c, outline=rim)  # lower bout
    p.ellipse(0, -0.01, 0.17, 0.15, c, outline=rim)  # upper bout
    p.ellipse(0, 0.07, 0.06, 0.06, BLACK)  # sound hole
    p.rect(-0.08, 0.27, 0.08, 0.3, _shade(WOOD, 0.6))  # bridge
    for i, x in enumerate((-0.024, -0.008, 0.008, 0.024)):
        if shown:  # strummed: strings shake
            ys = np.linspace(-0.45, 0.28, 9)
            xs = x + 0.03 * (-1.0) ** (np.arange(9) + i + frame)
            p.line(np.stack([xs, ys], 1), (255, 250, 220), 0.015)
        else:
            p.line([(x, -0.45), (x, 0.28)], (200, 200, 200), 0.01)
    if shown:
        for y in (-0.02, 0.08, 0.18):
            p.line([(0.25, y), (0.36, y - 0.04)], YELLOW, 0.025, part=False)  # motion marks


def _draw_piano(p: _Painter, c: RGB, shown: bool, frame: int) -> None:
    edge = _shade(c, 0.5) if sum(c) > 300 else (90, 90, 90)
    p.rect(-0.44, 0.3, -0.38, 0.48, c, outline=edge)  # legs
    p.rect(0.38, 0.3, 0.44, 0.48, c, outline=edge)
    p.rect(-0.48, -0.36, 0.48, 0.3, c, outline=edge)  # case
    p.rect(-0.44, -0.3, 0.44, -0.1, _shade(c, 0.8) if sum(c) > 300 else (60, 60, 65))  # front panel
    p.rect(-0.45, 0.0, 0.45, 0.16, WHITE)  # keyboard
    pressed = {(3 * frame + 4 * j) % 10 for j in range(3)} if shown else set()
    for k in range(10):
        x0 = -0.45 + 0.09 * k
        if k in pressed:
            p.rect(x0, 0.0, x0 + 0.09, 0.16, (110, 165, 235))
        p.line([(x0, 0.0), (x0, 0.16)], (60, 60, 60), 0.008)
    for k in (1, 2, 4, 5, 6, 8, 9):
        x = -0.45 + 0.09 * k
        p.rect(x - 0.022, 0.0, x + 0.022, 0.09, BLACK)  # black keys
    if shown:
        for j, x in enumerate((-0.3, 0.0, 0.28)):  # notes rising from the piano
            y = -0.45 - 0.05 * ((frame + j) % 2)
            p.ellipse(x, y, 0.04, 0.03, BLACK, part=False)
            p.line([(x + 0.035, y), (x + 0.035, y - 0.14)], BLACK, 0.02, part=False)


def _draw_violin(p: _Painter, c: RGB, shown: bool, frame: int) -> None:
    rim = _shade(c, 0.5)
    p.ellipse(0, 0.2, 0.2, 0.17, c, outline=rim)  # lower bout
    p.ellipse(0, -0.08, 0.17, 0.14, c, outline=rim)  # upper bout
    p.rect(-0.11, 0.0, 0.11, 0.12, c)  # waist
    for s in (-1, 1):
        p.line([(0.07 * s, 0.04), (0.06 * s, 0.17)], BLACK, 0.015)  # f-holes
    p.rect(-0.025, -0.45, 0.025, 0.17, BLACK)  # fingerboard
    p.ellipse(0, -0.47, 0.04, 0.035, _shade(c, 0.6))  # scroll
    p.ellipse(0.08, 0.3, 0.05, 0.03, BLACK)  # chin rest
    for x in (-0.015, -0.005, 0.005, 0.015):
        p.line([(x, -0.44), (x, 0.26)], (220, 220, 210), 0.006)
    if shown:  # the bow across the strings
        p.line([(-0.5, 0.22), (0.5, 0.02)], WOOD, 0.025, part=False)
        p.line([(-0.48, 0.25), (0.48, 0.05)], WHITE, 0.015, part=False)


def _draw_drum(p: _Painter, c: RGB, shown: bool, frame: int) -> None:
    for s in (-1, 1):
        p.line([(0.3 * s, 0.3), (0.42 * s, 0.48)], (150, 150, 150), 0.03)  # stand
    p.ellipse(0, 0.3, 0.4, 0.08, _shade(c, 0.7))  # bottom rim
    p.rect(-0.4, -0.1, 0.4, 0.3, c)  # shell
    xs = np.linspace(-0.38, 0.38, 9)
    ys = np.where(np.arange(9) % 2 == 0, -0.05, 0.26)
    p.line(np.stack([xs, ys], 1), (230, 230, 230), 0.015)  # lacing
    p.ellipse(0, -0.1, 0.4, 0.1, (235, 230, 215), outline=(120, 120, 120))  # drum head
    if shown:  # drumsticks striking, with an impact burst
        p.line([(-0.48, -0.48), (-0.08, -0.12)], (220, 180, 120), 0.035, part=False)
        p.line([(0.48, -0.5), (0.1, -0.13)], (220, 180, 120), 0.035, part=False)
        for a in np.deg2rad([200, 240, 270, 300, 340]):
            p.line([(0.16 * np.cos(a), -0.14 + 0.12 * np.sin(a)), (0.26 * np.cos(a), -0.14 + 0.2 * np.sin(a))],
                   YELLOW, 0.02, part=False)


def _draw_car(p: _Painter, c: RGB, shown: bool, frame: int) -> None:
    dark = _shade(c, 0.55)
    p.polygon([(-0.3, -0.05), (-0.18, -0.3), (0.16, -0.3), (0.32, -0.05)], c)  # cabin
    p.rect(-0.48, -0.06, 0.48, 0.18, c)  # body
    p.polygon([(-0.26, -0.07), (-0.16, -0.26), (-0.02, -0.26), (-0.02, -0.07)], GLASS)  # windows
    p.polygon([(0.02, -0.07), (0.02, -0.26), (0.14, -0.26), (0.27, -0.07)], GLASS)
    p.line([(0.0, -0.06), (0.0, 0.16)], dark, 0.012)  # door
    for x in (-0.3, 0.3):
        p.ellipse(x, 0.2, 0.11, 0.11, BLACK)  # wheels
        p.ellipse(x, 0.2, 0.05, 0.05, (170, 170, 170))
    p.ellipse(-0.46, 0.0, 0.02, 0.035, (200, 30, 30))  # tail light
    p.ellipse(0.45, 0.0, 0.035, 0.045, (255, 250, 170) if shown else (120, 120, 110))  # headlight
    if shown:
        p.polygon([(0.48, -0.02), (0.78, -0.15), (0.78, 0.17)], (255, 245, 170), part=False)  # beam


def _draw_bell(p: _Painter, c: RGB, shown: bool, frame: int) -> None:
    dark = _shade(c, 0.55)
    side = 1 if frame % 2 == 0 else -1
    if shown:  # swinging from its hanger
        p.rotate(24 * side, (0.0, -0.45))
    p.rect(-0.04, -0.5, 0.04, -0.38, (80, 70, 60))  # hanger
    p.polygon([(-0.09, -0.4), (0.09, -0.4), (0.19, -0.32), (0.23, -0.05), (0.27, 0.14), (0.38, 0.25),
               (-0.38, 0.25), (-0.27, 0.14), (-0.23, -0.05), (-0.19, -0.32)], c, outline=dark)
    p.line([(-0.26, 0.1), (0.26, 0.1)], dark, 0.025)  # bands
    p.line([(-0.21, -0.25), (0.21, -0.25)], dark, 0.02)
    p.ellipse(0.1 * side if shown else 0.0, 0.31, 0.06, 0.06, (70, 60, 50))  # clapper
    if shown:
        for r in (0.45, 0.52):  # motion arcs behind the swing
            a = np.deg2rad(np.linspace(100, 150, 6) if side > 0 else np.linspace(30, 80, 6))
            p.line(np.stack([r * np.cos(a), -0.45 + r * np.sin(a)], 1), WHITE, 0.02, part=False)


# ---------------------------------------------------------------------------------------------
# Sounds: one second (or n samples) of a class's sound, before loudness normalisation.

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


# ---------------------------------------------------------------------------------------------
# Classes.

@dataclass(frozen=True)
class _ObjectClass:
    name: str
    colours: tuple[tuple[str, RGB], ...]  # named colour options
    state: str  # phrase for the drawn sounding state, after the noun
    rest: str  # phrase for the drawn silent look
    verb: str  # how it sits in a sentence ("stands", "is parked")
    noun: str  # noun phrase template with {colour}
    draw: Callable[[_Painter, RGB, bool, int], None]
    sound: Callable[[np.random.Generator, int], np.ndarray]
    tilt: float = 0.0  # max random tilt in degrees
    flips: bool = False  # may face either way


CLASSES: tuple[_ObjectClass, ...] = (
    _ObjectClass("dog", (("brown", (150, 95, 50)), ("golden", (215, 165, 80))), "with its mouth open",
                 "with its mouth closed", "stands", "{colour} dog", _draw_dog, _sound_dog, flips=True),
    _ObjectClass("cat", (("gray", (130, 130, 135)), ("orange", (230, 130, 40))), "with its mouth open",
                 "with its mouth closed", "sits", "{colour} cat", _draw_cat, _sound_cat),
    _ObjectClass("bird", (("blue", (50, 110, 220)), ("yellow", (240, 210, 40))), "with its beak open",
                 "with its beak closed", "perches", "{colour} bird", _draw_bird, _sound_bird, flips=True),
    _ObjectClass("baby", (("pink", (240, 150, 180)), ("light blue", (140, 190, 240))),
                 "crying with its mouth open", "with a calm face", "sits", "baby in {colour} clothes",
                 _draw_baby, _sound_baby),
    _ObjectClass("guitar", (("red", (210, 40, 40)), ("purple", (140, 60, 170))),
                 "with strings being strummed", "with still strings", "rests", "{colour} guitar",
                 _draw_guitar, _sound_guitar, tilt=30),
    _ObjectClass("piano", (("black", (30, 30, 35)), ("white", (235, 235, 230))), "with its keys being played",
                 "with its keys untouched", "stands", "{colour} piano", _draw_piano, _sound_piano),
    _ObjectClass("violin", (("dark red", (130, 35, 30)), ("orange", (200, 100, 30))),
                 "being played with a bow", "without a bow", "lies", "{colour} violin", _draw_violin,
                 _sound_violin, tilt=30),
    _ObjectClass("drum", (("silver", (185, 185, 195)), ("green", (40, 150, 80))), "being hit with drumsticks",
                 "with no drumsticks", "stands", "{colour} drum", _draw_drum, _sound_drum),
    _ObjectClass("car", (("teal", (20, 140, 140)), ("navy", (30, 40, 110))), "with its headlights on",
                 "with its headlights off", "is parked", "{colour} car", _draw_car, _sound_car, flips=True),
    _ObjectClass("bell", (("gold", (220, 175, 40)), ("bronze", (175, 115, 50))), "swinging back and forth",
                 "hanging still", "is shown", "{colour} bell", _draw_bell, _sound_bell),
)
CLASS_NAMES = tuple(c.name for c in CLASSES)  # class k (0-based) has mask index k + 1

BACKGROUNDS: tuple[tuple[str, RGB, RGB], ...] = (  # (where, upper colour, lower colour)
    ("in a grassy field", (150, 195, 235), (95, 150, 70)),
    ("on a sandy beach", (170, 210, 235), (220, 200, 150)),
    ("in a gray room", (175, 175, 180), (120, 110, 105)),
    ("in a living room", (225, 210, 180), (140, 100, 70)),
    ("in a park at dusk", (120, 110, 160), (60, 90, 60)),
    ("on a snowy street", (200, 205, 215), (230, 232, 238)),
)


# ---------------------------------------------------------------------------------------------
# Planning: everything random about a video except pixel noise and audio samples.

@dataclass
class _Object:
    cls: int  # index into CLASSES
    colour: str
    rgb: RGB
    size: float  # pixels
    centres: np.ndarray  # (T, 2) per-frame centre, pixels
    angle: float
    flip: bool
    sounding: np.ndarray  # (T,) bool
    shown: np.ndarray  # (T,) bool: the sounding state is drawn


@dataclass
class _Plan:
    label: str
    split: str
    vid: str
    uid: str
    s_min: int
    s_sec: int
    frames: int
    objects: list[_Object]  # in drawing order, back to front
    background: int
    horizon: float  # fraction of the height
    has_mask: list[bool]
    render_seed: np.random.SeedSequence

    @property
    def a_obj(self) -> str:
        """The class sounding in most seconds (AVSBench's per-video audio category)."""
        seconds = [int(o.sounding.sum()) for o in self.objects]
        best = max(range(len(self.objects)), key=lambda i: (seconds[i], -self.objects[i].cls))
        return CLASS_NAMES[self.objects[best].cls]

    def sounding_classes(self) -> set[str]:
        return {CLASS_NAMES[o.cls] for o in self.objects if o.sounding.any()}


def _schedule(rng: np.random.Generator, n_obj: int, frames: int, single: bool) -> np.ndarray:
    """(T, n_obj) bool: who sounds each second; object 0 (the video's main source) sounds at least once."""
    while True:
        on = np.zeros((frames, n_obj), dtype=bool)
        if single:  # a Markov chain over {nobody, object i}, starting with the main source
            cur = 0
            for t in range(frames):
                if t > 0 and rng.random() > 0.6:
                    cur = -1 if rng.random() < 0.2 else int(rng.integers(n_obj))
                if cur >= 0:
                    on[t, cur] = True
        else:  # each object on/off with persistence
            state = rng.random(n_obj) < 0.55
            for t in range(frames):
                if t > 0:
                    state = state ^ (rng.random(n_obj) < 0.3)
                on[t] = state
        if on[:, 0].any():
            return on


def _place_objects(rng: np.random.Generator, n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Sizes (n,) and first-frame centres (n, 2), spread out so objects rarely overlap much."""
    sizes = rng.uniform(0.3, 0.44, n) * size
    centres = np.zeros((n, 2))
    for i in range(n):
        for _ in range(200):
            c = rng.uniform(sizes[i] / 2, size - sizes[i] / 2, 2)
            if all(np.hypot(*(c - centres[j])) >= 0.8 * (sizes[i] + sizes[j]) / 2 for j in range(i)):
                break
        centres[i] = c
    return sizes, centres


def _position(centre: np.ndarray, size: int) -> str:
    col = "left" if centre[0] < size / 3 else "right" if centre[0] > 2 * size / 3 else ""
    row = "top" if centre[1] < size / 3 else "bottom" if centre[1] > 2 * size / 3 else ""
    if row and col:
        return f"at the {row} {col}"
    if row:
        return f"at the {row}"
    if col:
        return f"on the {col}"
    return "in the center"


def _a(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _cap(s: str) -> str:
    return s[0].upper() + s[1:]


_OPENERS = ("A scene {where}.", "This picture was taken {where}.", "The image shows {count} {things} {where}.")
_COUNTS = ("one", "two", "three")


def _object_sentence(rng: np.random.Generator, cls: _ObjectClass, colour: str, pos: str, state: str) -> str:
    np_ = _a(cls.noun.format(colour=colour))
    tail = f" {state}" if state else ""
    templates = (
        f"{_cap(np_)}{tail} {cls.verb} {pos}.",
        f"{_cap(pos)}, there is {np_}{tail}.",
        f"There is {np_} {pos}" + (f", {state}." if state else "."),
        f"{_cap(np_)}{tail} can be seen {pos}.",
        f"We see {np_}{tail} {pos}.",
    )
    return templates[int(rng.integers(len(templates)))]


def _describe(rng: np.random.Generator, objects: list[_Object], t: int, where: str, size: int) -> tuple[str, list[int]]:
    """The frame's description (what is drawn) and the left-to-right object order it uses."""
    order = sorted(range(len(objects)), key=lambda i: objects[i].centres[t, 0])
    sentences = []
    if rng.random() < 0.5:
        opener = _OPENERS[int(rng.integers(len(_OPENERS)))]
        sentences.append(opener.format(where=where, count=_COUNTS[len(objects) - 1],
                                       things="thing" if len(objects) == 1 else "things"))
    for i in order:
        o = objects[i]
        cls = CLASSES[o.cls]
        state = cls.state if o.shown[t] else (cls.rest if rng.random() < 0.5 else "")
        sentences.append(_object_sentence(rng, cls, o.colour, _position(o.centres[t], size), state))
    return " ".join(sentences), order


def _plan(cfg: SynthConfig, label: str, split: str, index: int) -> tuple[_Plan, list[dict]]:
    """The video's scene and its per-frame description rows."""
    plan_seed, render_seed = np.random.SeedSequence(
        [cfg.seed, _VIDEO_STREAM, SUBSETS.index(label), SPLITS.index(split), index]).spawn(2)
    rng = np.random.default_rng(plan_seed)
    frames, size = FRAMES[label], cfg.size
    n = int(rng.integers(1, cfg.max_objects + 1))
    # the main source cycles through a shuffled class list, so every run of 10 videos of a
    # (subset, split) has each class sounding: small datasets still cover all classes (and V3)
    cycle = np.random.default_rng([cfg.seed, _CYCLE_STREAM, SUBSETS.index(label), SPLITS.index(split),
                                   index // len(CLASSES)])
    main = int(cycle.permutation(len(CLASSES))[index % len(CLASSES)])
    others = rng.permutation([k for k in range(len(CLASSES)) if k != main])[: n - 1]
    classes = np.array([main, *others.tolist()])
    sizes, starts = _place_objects(rng, n, size)
    on = _schedule(rng, n, frames, single=label == "v1s")
    objects = []
    for i, k in enumerate(classes.tolist()):
        cls = CLASSES[k]
        colour, rgb = cls.colours[int(rng.integers(len(cls.colours)))]
        jitter = rng.integers(-12, 13, 3)
        rgb = tuple(int(v) for v in np.clip(np.add(rgb, jitter), 0, 255))
        walk = np.cumsum(rng.normal(0, 0.012 * size, (frames, 2)), axis=0)  # objects drift slightly
        walk[0] = 0
        half = sizes[i] / 2
        centres = np.clip(starts[i] + walk, half, size - half)
        p_state = np.where(on[:, i], cfg.state_if_sounding, cfg.state_if_silent)
        objects.append(_Object(
            cls=k, colour=colour, rgb=rgb, size=float(sizes[i]), centres=centres,
            angle=float(rng.uniform(-cls.tilt, cls.tilt)), flip=bool(cls.flips and rng.random() < 0.5),
            sounding=on[:, i].copy(), shown=rng.random(frames) < p_state,
        ))
    objects.sort(key=lambda o: o.centres[0, 1])  # lower in the frame = nearer = drawn later
    background = int(rng.integers(len(BACKGROUNDS)))
    s_min, s_sec = int(rng.integers(0, 5)), int(rng.integers(0, 60))
    vid = f"synth_{label}_{split}_{index:04d}"
    uid = f"{vid}_{s_min}_{s_sec}"
    rows = []
    for t in range(frames):
        text, order = _describe(rng, objects, t, BACKGROUNDS[background][0], size)
        rows.append({"label": label, "uid": uid, "frame": t, "description": text,
                     "visible": [CLASS_NAMES[objects[i].cls] for i in order],
                     "sounding": [CLASS_NAMES[objects[i].cls] for i in order if objects[i].sounding[t]]})
    plan = _Plan(label=label, split=split, vid=vid, uid=uid, s_min=s_min, s_sec=s_sec, frames=frames,
                 objects=objects, background=background, horizon=float(rng.uniform(0.35, 0.65)),
                 has_mask=[t == 0 or not (label == "v1s" and split == "train") for t in range(frames)],
                 render_seed=render_seed)
    return plan, rows


# ---------------------------------------------------------------------------------------------
# Rendering (runs in the worker processes).

def _background(rng: np.random.Generator, plan: _Plan, size: int) -> np.ndarray:
    """(H, W, 3) float: upper/lower colours split at the horizon, two scales of texture, blobs."""
    _, upper, lower = BACKGROUNDS[plan.background]
    y = (np.arange(size) / size)[:, None, None]
    blend = np.clip((y - plan.horizon) * size / 4 + 0.5, 0, 1)  # a few pixels of soft horizon
    shade = 1.0 - 0.15 * np.abs(y - plan.horizon)
    base = ((1 - blend) * np.array(upper) + blend * np.array(lower)) * shade
    base = np.broadcast_to(base, (size, size, 3)).copy()
    for cells, amp in ((5, 14.0), (20, 6.0)):
        grid = rng.normal(0, amp, (cells, cells, 3))
        base += zoom(grid, (size / cells, size / cells, 1), order=1)[:size, :size]
    image = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(3, 7))):  # faint stones / clouds
        cx, cy = rng.uniform(0, size, 2)
        rx, ry = rng.uniform(0.03, 0.1, 2) * size
        tone = upper if cy < plan.horizon * size else lower
        draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=_shade(tone, rng.uniform(0.8, 1.2)))
    return np.asarray(image, dtype=np.float64)


def _render_frame(rng: np.random.Generator, plan: _Plan, base: np.ndarray, t: int,
                  size: int) -> tuple[Image.Image, np.ndarray]:
    """The frame and its (H, W) uint8 class-index mask of the objects sounding at second t."""
    noisy = base + rng.normal(0, 4, base.shape) + rng.uniform(-6, 6)  # sensor noise and lighting
    image = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
    mask = Image.new("L", (size, size), 0)
    frame_draw, mask_draw = ImageDraw.Draw(image), ImageDraw.Draw(mask)
    for o in plan.objects:
        # silent objects paint background into the mask so they occlude sounding ones correctly
        value = o.cls + 1 if o.sounding[t] else 0
        painter = _Painter(frame_draw, mask_draw, value, o.centres[t], o.size, o.angle, o.flip)
        CLASSES[o.cls].draw(painter, o.rgb, bool(o.shown[t]), t)
    return image, np.asarray(mask)


def _render_audio(rng: np.random.Generator, plan: _Plan, cfg: SynthConfig) -> np.ndarray:
    """(T * 16000,) float32: per second the sum of the sounding objects' sounds, plus noise."""
    n = plan.frames * SAMPLE_RATE
    audio = np.zeros(n)
    fade = np.minimum(1, np.minimum(np.arange(SAMPLE_RATE), np.arange(SAMPLE_RATE)[::-1]) / 80)  # 5 ms
    for t in range(plan.frames):
        for o in plan.objects:
            if o.sounding[t]:
                x = CLASSES[o.cls].sound(rng, SAMPLE_RATE)
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


def _write_video(job: tuple[Path, _Plan, SynthConfig]) -> None:
    """Write one video's frames, masks and audio."""
    root, plan, cfg = job
    rng = np.random.default_rng(plan.render_seed)
    folder = root / plan.label / plan.uid
    for sub in ("frames", "labels_rgb", "labels_semantic"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    base = _background(rng, plan, cfg.size)
    for t in range(plan.frames):
        image, mask = _render_frame(rng, plan, base, t, cfg.size)
        image.save(folder / "frames" / f"{t}.jpg", quality=cfg.jpeg_quality)
        if plan.has_mask[t]:
            Image.fromarray(mask, mode="L").save(folder / "labels_semantic" / f"{t}.png")
            Image.fromarray(index_to_rgb(mask)).save(folder / "labels_rgb" / f"{t}.png")
    sf.write(folder / "audio.wav", _render_audio(rng, plan, cfg), SAMPLE_RATE, subtype="PCM_16")


# ---------------------------------------------------------------------------------------------
# Index files and the AVS-V3 splits.

def _metadata_row(plan: _Plan) -> dict:
    return {"vid": plan.vid, "uid": plan.uid, "s_min": plan.s_min, "s_sec": plan.s_sec, "a_obj": plan.a_obj,
            "split": plan.split, "label": plan.label}


def _write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=METADATA_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def _v3_splits(plans: list[_Plan], cfg: SynthConfig) -> tuple[dict[str, list[dict]], dict[str, dict[str, int]]]:
    """AVS-V3-style files (path under v3/ -> metadata rows) and the shortfall of the k-shot splits.

    Zero-shot: seen train/val hold the train/val videos whose sounding classes are all seen;
    unseen holds every video with an unseen sounding class. k-shot: train is seen train plus k
    unseen videos per unseen class (nested: the 1-shot picks are among the 3-shot ones); test is
    the other unseen videos. A dataset too small for k videos of a class gets all it has, and the
    shortfall ({"5_shot": {"cat": 3}}: three videos instead of five) is returned to be reported."""
    unseen_set = set(cfg.unseen_classes)
    is_unseen = [bool(p.sounding_classes() & unseen_set) for p in plans]
    seen_train = [_metadata_row(p) for p, u in zip(plans, is_unseen) if not u and p.split == "train"]
    out = {
        "meta_v3_seen_train.csv": seen_train,
        "meta_v3_seen_val.csv": [_metadata_row(p) for p, u in zip(plans, is_unseen) if not u and p.split == "val"],
        "meta_v3_unseen.csv": [_metadata_row(p) for p, u in zip(plans, is_unseen) if u],
    }
    unseen_idx = [i for i, u in enumerate(is_unseen) if u]
    rng = np.random.default_rng([cfg.seed, _V3_STREAM])
    order = [unseen_idx[j] for j in rng.permutation(len(unseen_idx))]
    shortfall: dict[str, dict[str, int]] = {}
    for k in SHOTS:
        chosen: list[int] = []
        for name in sorted(unseen_set, key=CLASS_NAMES.index):
            pool = [i for i in order if name in plans[i].sounding_classes() and i not in chosen]
            if len(pool) < k:
                shortfall.setdefault(f"{k}_shot", {})[name] = len(pool)
            chosen += pool[:k]
        picked = set(chosen)
        out[f"v3_{k}_shot/train.csv"] = seen_train + [_metadata_row(plans[i]) for i in sorted(picked)]
        out[f"v3_{k}_shot/test.csv"] = [_metadata_row(plans[i]) for i in unseen_idx if i not in picked]
    return out, shortfall


def _check(cfg: SynthConfig) -> None:
    problems = []
    if not isinstance(cfg.videos, dict) or not cfg.videos:
        problems.append("videos must map subsets (v1s, v1m, v2) to {split: count}")
    else:
        for label, splits in cfg.videos.items():
            if label not in SUBSETS:
                problems.append(f"unknown subset '{label}' (expected one of {', '.join(SUBSETS)})")
            elif not isinstance(splits, dict):
                problems.append(f"videos['{label}'] must map splits to counts")
            else:
                for split, count in splits.items():
                    if split not in SPLITS:
                        problems.append(f"unknown split '{split}' in {label} (expected one of {', '.join(SPLITS)})")
                    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                        problems.append(f"videos['{label}']['{split}'] must be an int >= 0, got {count!r}")
        if not problems and sum(sum(s.values()) for s in cfg.videos.values()) == 0:
            problems.append("videos asks for no video at all")
    if not isinstance(cfg.size, int) or not 32 <= cfg.size <= 1024:
        problems.append(f"size must be an int in [32, 1024], got {cfg.size!r}")
    if cfg.max_objects not in (1, 2, 3):
        problems.append(f"max_objects must be 1, 2 or 3, got {cfg.max_objects!r}")
    for name in ("state_if_sounding", "state_if_silent"):
        if not 0 <= getattr(cfg, name) <= 1:
            problems.append(f"{name} must be a probability, got {getattr(cfg, name)!r}")
    if not cfg.sound_rms > 0 or not cfg.noise_rms >= 0:
        problems.append("sound_rms must be > 0 and noise_rms >= 0")
    unknown = [c for c in cfg.unseen_classes if c not in CLASS_NAMES]
    if unknown:
        problems.append(f"unknown unseen classes {unknown} (classes: {', '.join(CLASS_NAMES)})")
    if len(set(cfg.unseen_classes)) != len(cfg.unseen_classes) or not 1 <= len(cfg.unseen_classes) < len(CLASSES):
        problems.append("unseen_classes must name between 1 and all-but-one distinct classes")
    if not 1 <= cfg.jpeg_quality <= 95:
        problems.append(f"jpeg_quality must be in [1, 95], got {cfg.jpeg_quality!r}")
    if not isinstance(cfg.workers, int) or cfg.workers < 1:
        problems.append(f"workers must be an int >= 1, got {cfg.workers!r}")
    if problems:
        raise ValueError("invalid SynthConfig: " + "; ".join(problems))


def _same_tree(a: Path, b: Path) -> bool:
    def files(root: Path) -> list[str]:
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())

    names = files(a)
    return names == files(b) and all(filecmp.cmp(a / n, b / n, shallow=False) for n in names)


def _keep_unchanged_mtimes(new: Path, old: Path) -> None:
    """Give every file of `new` that is byte-identical to its namesake in `old` that file's times, so
    a regenerated dataset (e.g. more videos per split; video i depends only on seed, subset, split
    and i) leaves the unchanged videos' signatures, and the caches keyed on them, valid."""
    for path in new.rglob("*"):
        before = old / path.relative_to(new)
        if path.is_file() and before.is_file() and filecmp.cmp(path, before, shallow=False):
            st = before.stat()
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _install(tmp: Path, out: Path) -> bool:
    """Move the finished dataset into place; False when `out` already held identical files (kept,
    so their modification times, and the caches keyed on them, stay valid)."""
    if out.exists() and any(out.iterdir()):
        if _same_tree(tmp, out):
            shutil.rmtree(tmp)
            return False
        _keep_unchanged_mtimes(tmp, out)
        old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old)
        return True
    if out.exists():
        out.rmdir()
    os.replace(tmp, out)
    return True


def generate(out: Path, cfg: SynthConfig, progress: bool = True) -> dict:
    """Write the synthetic dataset to `out` and return a summary: videos per subset and split,
    frames, seconds taken, whether `out` changed, and any V3 k-shot shortfall (also warned).

    `out` must be missing, empty, or an earlier synthetic dataset (it has scene_descriptions.jsonl),
    which is replaced, or kept untouched when the new files are byte-identical. With workers > 1
    the pool is started by spawn, so a calling script needs the `if __name__ == "__main__":` guard."""
    _check(cfg)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} is a file; the synthetic dataset needs a folder")
    if out.exists() and any(out.iterdir()) and not (out / "scene_descriptions.jsonl").is_file():
        raise FileExistsError(f"{out} is not empty and is not an earlier synthetic dataset "
                              "(no scene_descriptions.jsonl); refusing to replace it")
    start = time.perf_counter()
    plans, rows = [], []
    for label in SUBSETS:
        for split in SPLITS:
            for i in range(cfg.videos.get(label, {}).get(split, 0)):
                plan, desc = _plan(cfg, label, split, i)
                plans.append(plan)
                rows += desc
    v3, shortfall = _v3_splits(plans, cfg)
    if shortfall:
        warnings.warn(f"dataset too small for the AVS-V3 k-shot splits; unseen videos per class found instead "
                      f"of k: {shortfall}", stacklevel=2)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        jobs = [(tmp, p, cfg) for p in plans]
        with tqdm(total=len(jobs), desc="synth videos", unit="video", disable=not progress) as bar:
            if cfg.workers == 1 or len(jobs) < 2:
                for job in jobs:
                    _write_video(job)
                    bar.update()
            else:
                # spawn, not fork: a caller may hold torch or tqdm threads whose locks fork would copy
                with multiprocessing.get_context("spawn").Pool(min(cfg.workers, len(jobs))) as pool:
                    for _ in pool.imap_unordered(_write_video, jobs, chunksize=4):
                        bar.update()
        _write_csv(tmp / "metadata.csv", [_metadata_row(p) for p in plans])
        label2idx = {"background": 1} | {name: k + 2 for k, name in enumerate(CLASS_NAMES)}
        (tmp / "label2idx.json").write_text(json.dumps(label2idx, indent=2) + "\n")
        rows.sort(key=lambda r: (r["label"], r["uid"], r["frame"]))
        (tmp / "scene_descriptions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        for name, v3_rows in v3.items():
            _write_csv(tmp / "v3" / name, v3_rows)
        changed = _install(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    counts = {label: dict(splits) for label, splits in cfg.videos.items()}
    return {"out": str(out), "videos": counts, "frames": sum(p.frames for p in plans),
            "seconds": round(time.perf_counter() - start, 2), "changed": changed, "v3_shortfall": shortfall}
