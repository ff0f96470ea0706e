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
    ROOT/v3/metadata.csv                         the copy of metadata.csv that the GAVS repository
                                                 keeps beside its split files: read when
                                                 ROOT/metadata.csv is absent
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
V3_METADATA = f"{V3_DIR}/{METADATA_FILE}"


def v3_shot_file(k: int | str, role: str) -> str:
    """The k-shot split file of `role` (train or test), relative to ROOT."""
    return f"{V3_DIR}/v3_{k}_shot/{role}.csv"


def v3_split_values(rel: str) -> tuple[str, ...]:
    """The `split` values a row of the V3 split file `rel` may carry: what the GAVS release writes
    there (`seen_train`, `seen_val`, `unseen`, and `v3_1_shot_train` in every k-shot file, train and
    test, of every k), `v3_{k}_shot_{role}`, and the role itself. The role comes from the file, never from this column;
    a value outside this set says the row belongs to another file (an unseen video in a seen split,
    a 3-shot pick in a 1-shot file) and is an error."""
    fixed = {V3_SEEN_TRAIN: ("seen_train", "train"), V3_SEEN_VAL: ("seen_val", "val"), V3_UNSEEN: ("unseen", "test")}
    if rel in fixed:
        return fixed[rel]
    parts = rel.split("/")
    if len(parts) == 3 and parts[0] == V3_DIR and parts[1].startswith("v3_") and parts[1].endswith("_shot"):
        k, role = parts[1][len("v3_"):-len("_shot")], parts[2].removesuffix(".csv")
        if role == "train":
            return tuple(dict.fromkeys(("v3_1_shot_train", f"v3_{k}_shot_train", "train")))
        if role == "test":
            return tuple(dict.fromkeys(("v3_1_shot_train", f"v3_{k}_shot_train", f"v3_{k}_shot_test", "unseen", "test")))
    raise ValueError(f"not an AVS-V3 split file: {rel}")
