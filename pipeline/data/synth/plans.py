"""What a synthetic dataset holds, decided before any pixel or sample is made: SynthConfig and
its checks, the per-video plans (which objects, where, which of them sound each second, which
show their drawn state) and the AVS-V3 seen/unseen split assignment.

Determinism: video i of (subset, split) draws everything from
`SeedSequence([seed, stream tag, subset, split, i])`; its main sounding class comes from a
shuffled class cycle per (subset, split), so any 10 consecutive videos cover every class. A plan
also carries the seed of its rendering stream (pixel noise, audio samples), so rendering needs
nothing but the plan. Imports stay light (numpy, no PIL or scipy): pipeline/config.py imports
SynthConfig.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.data.layout import (
    FRAMES_PER_VIDEO,
    METADATA_COLUMNS,
    SPLITS,
    SUBSETS,
    V3_SEEN_TRAIN,
    V3_SEEN_VAL,
    V3_UNSEEN,
    v3_shot_file,
)
from pipeline.data.synth.captions import _describe
from pipeline.data.synth.classes import BACKGROUNDS, CLASS_NAMES, CLASSES, RGB

FRAMES = FRAMES_PER_VIDEO  # one frame per second, as the real release
SHOTS = (1, 3, 5)  # AVS-V3 few-shot splits
_VIDEO_STREAM, _CYCLE_STREAM, _V3_STREAM = 0, 1, 2  # tags that keep the random streams apart


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
# Index rows and the AVS-V3 splits.

def _metadata_row(plan: _Plan) -> dict:
    return {"vid": plan.vid, "uid": plan.uid, "s_min": plan.s_min, "s_sec": plan.s_sec, "a_obj": plan.a_obj,
            "split": plan.split, "label": plan.label}


def _v3_splits(plans: list[_Plan], cfg: SynthConfig) -> tuple[dict[str, list[dict]], dict[str, dict[str, int]]]:
    """AVS-V3 files in the GAVS release's format (path under the root -> metadata rows) and the
    shortfall of the k-shot splits.

    Zero-shot: seen train/val hold the train/val videos whose sounding classes are all seen;
    unseen holds every video with an unseen sounding class. k-shot: train holds k unseen videos
    per unseen class, and only those, as the release's v3_{k}_shot/train.csv does (nested: the
    1-shot picks are among the 3-shot ones); test is the other unseen videos. The `split` column
    carries the release's values: seen_train, seen_val, unseen, and v3_1_shot_train in every k-shot
    file (the release writes that in its train and test files of every k). A dataset too small for k videos
    of a class gets all it has, and the shortfall ({"5_shot": {"cat": 3}}: three videos instead of
    five) is returned to be reported."""
    def rows(idx, split: str) -> list[dict]:
        return [_metadata_row(plans[i]) | {"split": split} for i in idx]

    unseen_set = set(cfg.unseen_classes)
    is_unseen = [bool(p.sounding_classes() & unseen_set) for p in plans]
    out = {
        V3_SEEN_TRAIN: rows([i for i, p in enumerate(plans) if not is_unseen[i] and p.split == "train"], "seen_train"),
        V3_SEEN_VAL: rows([i for i, p in enumerate(plans) if not is_unseen[i] and p.split == "val"], "seen_val"),
        V3_UNSEEN: rows([i for i, u in enumerate(is_unseen) if u], "unseen"),
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
        out[v3_shot_file(k, "train")] = rows(sorted(picked), "v3_1_shot_train")
        out[v3_shot_file(k, "test")] = rows([i for i in unseen_idx if i not in picked], "v3_1_shot_train")
    return out, shortfall

