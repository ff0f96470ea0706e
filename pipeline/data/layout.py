"""File and folder names of the AVSBench-semantic layout (README.md, "Datasets"), spelled once for
the reader (pipeline/data/avsbench.py) and the synthetic generator (pipeline/data/synth).

    ROOT/metadata.csv                            one row per video: vid,uid,s_min,s_sec,a_obj,split,label
    ROOT/label2idx.json                          {class name: 1-based id}, background = 1
    ROOT/{label}/{uid}/frames/{i}.jpg            frame i, one per second (label = subset v1s, v1m or v2)
    ROOT/{label}/{uid}/labels_rgb/{i}.png        its mask in palette colours
    ROOT/{label}/{uid}/labels_semantic/{i}.png   its mask as gray class indices
    ROOT/{label}/{uid}/audio.wav                 the video's soundtrack
    ROOT/v3/meta_v3_seen_train.csv, ROOT/v3/meta_v3_seen_val.csv, ROOT/v3/meta_v3_unseen.csv,
    ROOT/v3/v3_{k}_shot/{train,test}.csv         AVS-V3 split files (metadata.csv's columns)
    ROOT/scene_descriptions.jsonl                per-frame reference descriptions: not part of the
                                                 release; the synthetic dataset writes it and the
                                                 `reference` captioner reads it

Paths of the V3 split files are relative to ROOT, with `/` separators.
"""
from __future__ import annotations

SUBSETS = ("v1s", "v1m", "v2")  # the `label` column: S4 (single source), MS3 (multi-source), AVSS
SPLITS = ("train", "val", "test")
FRAMES_PER_VIDEO = {"v1s": 5, "v1m": 5, "v2": 10}  # one frame per second
METADATA_COLUMNS = ("vid", "uid", "s_min", "s_sec", "a_obj", "split", "label")

METADATA_FILE = "metadata.csv"
LABEL2IDX_FILE = "label2idx.json"
DESCRIPTIONS_FILE = "scene_descriptions.jsonl"

# per video, under ROOT/{label}/{uid}/
FRAMES_DIR = "frames"
LABELS_RGB_DIR = "labels_rgb"
LABELS_SEMANTIC_DIR = "labels_semantic"
AUDIO_FILE = "audio.wav"
FRAME_SUFFIX = ".jpg"  # frames/{i}.jpg
MASK_SUFFIX = ".png"  # labels_rgb/{i}.png, labels_semantic/{i}.png

V3_DIR = "v3"
V3_SEEN_TRAIN = f"{V3_DIR}/meta_v3_seen_train.csv"
V3_SEEN_VAL = f"{V3_DIR}/meta_v3_seen_val.csv"
V3_UNSEEN = f"{V3_DIR}/meta_v3_unseen.csv"


def v3_shot_file(k: int | str, role: str) -> str:
    """The k-shot split file of `role` (train or test), relative to ROOT."""
    return f"{V3_DIR}/v3_{k}_shot/{role}.csv"
