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

Layout (pipeline/data/layout.py): `metadata.csv` (vid
`synth_{label}_{split}_{i:04d}`, uid `{vid}_{s_min}_{s_sec}`, a_obj = the class sounding in most
seconds), `label2idx.json`, per video `{label}/{uid}/frames/{i}.jpg`, `labels_rgb/{i}.png`,
`labels_semantic/{i}.png`, `audio.wav` (16 kHz mono PCM_16, T seconds); in v1s train only frame 0
has masks. Also `scene_descriptions.jsonl` (label, uid, frame, description, visible, sounding) and
AVS-V3-style seen/unseen split files under `v3/` (rules in `plans._v3_splits`).

Determinism: everything about video i of (subset, split) comes from its seed, subset, split and i
(plans.py); scenes are planned in the parent and rendered by a pool whose scheduling cannot change
a byte. The dataset is built in a hidden sibling folder and swapped into place, so a crash never
leaves a half-written dataset behind (writer.py).

Modules: classes (the object classes and backgrounds), plans (SynthConfig, per-video plans and
sounding schedules, V3 split assignment), captions (scene descriptions), drawing (objects,
frames, masks), sounds (class sounds, audio mixing), writer (files, index files, `generate`).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from pipeline.data.synth.classes import BACKGROUNDS, CLASS_NAMES, CLASSES
from pipeline.data.synth.plans import FRAMES, METADATA_COLUMNS, SHOTS, SPLITS, SUBSETS, SynthConfig
from pipeline.data.synth.sounds import SAMPLE_RATE
from pipeline.data.synth.writer import generate

__all__ = [
    "BACKGROUNDS", "CLASSES", "CLASS_NAMES", "FRAMES", "METADATA_COLUMNS", "SAMPLE_RATE", "SHOTS", "SPLITS",
    "SUBSETS", "SynthConfig", "generate", "source_sha256",
]


def source_sha256() -> str:
    """SHA-256 of the source bytes of this package's .py files (sorted by name) and of the layout
    and palette modules it writes with: a stamp of the generator code (same stamp, same code)."""
    data = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in [*sorted(Path(__file__).parent.glob("*.py"), key=lambda p: p.name), data / "layout.py", data / "palette.py"]:
        digest.update(path.read_bytes())
    return digest.hexdigest()
