"""The synthetic dataset: AVSBench-semantic layout, determinism, masks vs sounding, descriptions,
V3 splits, and whether its premise holds (sounds tell classes apart; drawn states only hint)."""
import csv
import hashlib
import json
import re
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from pipeline.data.palette import rgb_to_index
from pipeline.data.synth import CLASSES, SynthConfig, generate

# v1m holds 10 videos per split so every class is a main source there (enough unseen videos for
# the 5-shot V3 split); the rest stays small
VIDEOS = {"v1s": {"train": 4, "val": 4, "test": 4}, "v1m": {"train": 10, "val": 10, "test": 10},
          "v2": {"train": 3, "val": 3, "test": 3}}
FRAMES = {"v1s": 5, "v1m": 5, "v2": 10}
COLUMNS = ["vid", "uid", "s_min", "s_sec", "a_obj", "split", "label"]
STATES = {c.name: c.state for c in CLASSES}


def small(**kwargs) -> SynthConfig:
    return SynthConfig(**{"size": 64, "videos": VIDEOS, "workers": 1, **kwargs})


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "data"
    summary = generate(root, small(), progress=False)
    meta = read_csv(root / "metadata.csv")
    label2idx = json.loads((root / "label2idx.json").read_text())
    rows = [json.loads(line) for line in (root / "scene_descriptions.jsonl").read_text().splitlines()]
    return root, summary, meta, label2idx, rows


def test_layout_and_metadata(dataset):
    root, summary, meta, _, _ = dataset
    with open(root / "metadata.csv", newline="") as fh:
        assert next(csv.reader(fh)) == COLUMNS
    for label, splits in VIDEOS.items():
        for split, n in splits.items():
            assert sum(1 for r in meta if r["label"] == label and r["split"] == split) == n
    assert len({r["uid"] for r in meta}) == len(meta)
    assert summary["videos"] == VIDEOS
    assert summary["frames"] == sum(n * FRAMES[label] for label, s in VIDEOS.items() for n in s.values())
    assert sorted(p.name for p in root.iterdir()) == sorted(
        ["metadata.csv", "label2idx.json", "scene_descriptions.jsonl", "v3", "v1s", "v1m", "v2"])
    for r in meta:
        folder = root / r["label"] / r["uid"]
        T = FRAMES[r["label"]]
        masked = [0] if (r["label"], r["split"]) == ("v1s", "train") else list(range(T))
        assert sorted(p.name for p in folder.iterdir()) == ["audio.wav", "frames", "labels_rgb", "labels_semantic"]
        assert sorted(p.name for p in (folder / "frames").iterdir()) == sorted(f"{i}.jpg" for i in range(T))
        for sub in ("labels_rgb", "labels_semantic"):
            assert sorted(p.name for p in (folder / sub).iterdir()) == sorted(f"{i}.png" for i in masked)
        with Image.open(folder / "frames" / "0.jpg") as im:
            assert (im.format, im.mode, im.size) == ("JPEG", "RGB", (64, 64))
        with Image.open(folder / "labels_semantic" / "0.png") as im:
            assert (im.mode, im.size) == ("L", (64, 64))


def test_label2idx(dataset):
    _, _, meta, label2idx, _ = dataset
    assert label2idx["background"] == 1
    assert list(label2idx.values()) == list(range(1, len(label2idx) + 1))
    assert len(label2idx) - 1 >= 8
    assert all(re.fullmatch(r"[a-z]+", name) for name in label2idx)
    assert {r["a_obj"] for r in meta} <= set(label2idx) - {"background"}


def test_audio_is_16k_mono_T_seconds(dataset):
    root, _, meta, _, _ = dataset
    for r in meta:
        info = sf.info(root / r["label"] / r["uid"] / "audio.wav")
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert info.frames == FRAMES[r["label"]] * 16000


def test_byte_identical_across_runs_and_workers(dataset, tmp_path):
    root = dataset[0]
    again = tmp_path / "again"
    generate(again, small(workers=2), progress=False)
    assert hashes(again) == hashes(root)
    other = tmp_path / "other"
    generate(other, small(seed=1, videos={"v1m": {"train": 10, "val": 10, "test": 10}}), progress=False)
    ours, theirs = hashes(root), hashes(other)
    assert theirs["metadata.csv"] != ours["metadata.csv"]
    assert theirs["scene_descriptions.jsonl"] != ours["scene_descriptions.jsonl"]


def test_masks_mark_exactly_the_sounding_objects(dataset):
    root, _, meta, label2idx, rows = dataset
    by_frame = {(r["label"], r["uid"], r["frame"]): r for r in rows}
    empty = nonempty = 0
    for m in meta:
        folder = root / m["label"] / m["uid"]
        for path in sorted((folder / "labels_semantic").iterdir()):
            t = int(path.stem)
            semantic = np.asarray(Image.open(path))
            rgb = np.asarray(Image.open(folder / "labels_rgb" / path.name).convert("RGB"))
            assert np.array_equal(rgb_to_index(rgb), semantic)
            sounding = by_frame[(m["label"], m["uid"], t)]["sounding"]
            assert set(np.unique(semantic)) - {0} == {label2idx[c] - 1 for c in sounding}
            empty += not sounding
            nonempty += bool(sounding)
    assert empty > 0 and nonempty > 0


def test_scene_descriptions(dataset):
    _, _, meta, _, rows = dataset
    keys = [(r["label"], r["uid"], r["frame"]) for r in rows]
    assert keys == sorted(keys)
    assert len(rows) == sum(FRAMES[m["label"]] for m in meta)
    assert all(list(r) == ["label", "uid", "frame", "description", "visible", "sounding"] for r in rows)
    several = 0
    for r in rows:
        assert 1 <= len(r["visible"]) <= 3 and len(set(r["visible"])) == len(r["visible"])
        assert set(r["sounding"]) <= set(r["visible"])
        if r["label"] == "v1s":
            assert len(r["sounding"]) <= 1
        several += len(r["sounding"]) >= 2
        sentences = r["description"].split(". ")
        for name in r["visible"]:
            said = [s for s in sentences if re.search(rf"\b{name}\b", s)]
            assert said, f"{name} missing from: {r['description']}"
            assert re.search(r"\b(left|right|top|bottom|center)\b", said[0])
    assert several > 0


def test_drawn_state_hints_at_sounding_but_is_unreliable(dataset):
    rows = dataset[4]
    shown = defaultdict(list)  # sounding? -> [state described?]
    for r in rows:
        for s in r["description"].split(". "):
            for name in r["visible"]:
                if re.search(rf"\b{name}\b", s):
                    shown[name in r["sounding"]].append(STATES[name] in s)
    on, off = np.mean(shown[True]), np.mean(shown[False])
    assert 0.6 < on < 0.95 and 0.03 < off < 0.3


def test_v3_splits(dataset):
    root, summary, meta, _, rows = dataset
    unseen = set(SynthConfig().unseen_classes)
    assert summary["v3_shortfall"] == {}
    sounding = defaultdict(set)
    for r in rows:
        sounding[r["uid"]] |= set(r["sounding"])
    by_uid = {r["uid"]: r for r in meta}
    v3 = {p.relative_to(root / "v3").as_posix(): read_csv(p) for p in (root / "v3").rglob("*.csv")}
    assert sorted(v3) == sorted(["meta_v3_seen_train.csv", "meta_v3_seen_val.csv", "meta_v3_unseen.csv"]
                                + [f"v3_{k}_shot/{s}.csv" for k in (1, 3, 5) for s in ("train", "test")])
    for rs in v3.values():  # metadata.csv's rows, with the release's split values
        assert all(r | {"split": by_uid[r["uid"]]["split"]} == by_uid[r["uid"]] for r in rs)
    seen_train, seen_val, unseen_rows = (v3[f"meta_v3_{n}.csv"] for n in ("seen_train", "seen_val", "unseen"))
    assert {r["split"] for r in seen_train} == {"seen_train"} and {r["split"] for r in seen_val} == {"seen_val"}
    assert {r["split"] for r in unseen_rows} == {"unseen"}
    assert {by_uid[r["uid"]]["split"] for r in seen_train} == {"train"}
    assert {by_uid[r["uid"]]["split"] for r in seen_val} == {"val"}
    assert all(not sounding[r["uid"]] & unseen for r in seen_train + seen_val)
    assert all(sounding[r["uid"]] & unseen for r in unseen_rows)
    assert {r["uid"] for r in unseen_rows} == {m["uid"] for m in meta if sounding[m["uid"]] & unseen}
    unseen_uids = {r["uid"] for r in unseen_rows}
    for k in (1, 3, 5):
        train, test = v3[f"v3_{k}_shot/train.csv"], v3[f"v3_{k}_shot/test.csv"]
        # as released: the train file holds only the shots, and every k-shot file says v3_1_shot_train
        assert {r["split"] for r in train + test} == {"v3_1_shot_train"}
        shots = {r["uid"] for r in train}
        assert len(shots) == len(train) == k * len(unseen) and shots <= unseen_uids
        for name in unseen:
            assert sum(name in sounding[u] for u in shots) >= k
        assert {r["uid"] for r in test} == unseen_uids - shots


def band_features(x: np.ndarray) -> np.ndarray:
    """Log share of a second's energy in 24 log-spaced bands, 30 Hz - 7.9 kHz."""
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    f = np.fft.rfftfreq(len(x), 1 / 16000)
    edges = np.geomspace(30, 7900, 25)
    e = np.array([spec[(f >= a) & (f < b)].sum() for a, b in zip(edges[:-1], edges[1:])])
    return np.log(e / e.sum() + 1e-9)


def test_class_sounds_are_distinguishable(dataset):
    """Nearest-class-mean on the spectra of single-source seconds, leave-one-out."""
    root, _, _, _, rows = dataset
    X, y = [], []
    for r in rows:
        if len(r["sounding"]) == 1:
            audio, _ = sf.read(root / r["label"] / r["uid"] / "audio.wav")
            X.append(band_features(audio[r["frame"] * 16000 : (r["frame"] + 1) * 16000]))
            y.append(r["sounding"][0])
    X, y = np.array(X), np.array(y)
    classes = [c for c in sorted(set(y)) if (y == c).sum() >= 2]
    assert len(classes) >= 8
    keep = np.isin(y, classes)
    X, y = X[keep], y[keep]
    hits = 0
    for i in range(len(y)):
        others = np.arange(len(y)) != i
        means = {c: X[others & (y == c)].mean(0) for c in classes}
        hits += min(means, key=lambda c: np.sum((X[i] - means[c]) ** 2)) == y[i]
    assert hits / len(y) >= 0.9


def test_regenerating_keeps_identical_and_replaces_changed(tmp_path):
    tiny = {"v1s": {"train": 1}, "v2": {"test": 1}}
    out = tmp_path / "data"
    with pytest.warns(UserWarning, match="too small for the AVS-V3"):
        first = generate(out, small(videos=tiny), progress=False)
    assert first["changed"] and first["v3_shortfall"]
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert not generate(out, small(videos=tiny), progress=False)["changed"]
        assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before
        assert generate(out, small(videos=tiny, seed=3), progress=False)["changed"]
    assert [p.name for p in tmp_path.iterdir()] == ["data"]  # no temporary folders left


@pytest.mark.parametrize("change, message", [
    ({"videos": {"v3": {"train": 1}}}, "unknown subset"),
    ({"videos": {"v2": {"dev": 1}}}, "unknown split"),
    ({"videos": {"v2": {"train": -1}}}, "int >= 0"),
    ({"videos": {"v2": {"train": 0}}}, "no video"),
    ({"size": 8}, "size"),
    ({"max_objects": 4}, "max_objects"),
    ({"state_if_silent": 1.5}, "probability"),
    ({"unseen_classes": ("unicorn",)}, "unknown unseen"),
    ({"workers": 0}, "workers"),
])
def test_bad_config_is_refused(tmp_path, change, message):
    with pytest.raises(ValueError, match=message):
        generate(tmp_path / "data", small(**change), progress=False)
    assert not (tmp_path / "data").exists()


def test_refuses_to_replace_a_foreign_folder(tmp_path):
    (tmp_path / "metadata.csv").write_text("vid\n")
    with pytest.raises(FileExistsError, match="not an earlier synthetic dataset"):
        generate(tmp_path, small(videos={"v2": {"train": 1}}), progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["metadata.csv"]


def test_regenerating_refuses_to_delete_files_a_user_added(tmp_path):
    out = tmp_path / "data"
    generate(out, small(videos={"v2": {"train": 1}}), progress=False)
    notes = out / "my_notes.txt"
    notes.write_text("mine")
    inside = next((out / "v2").iterdir()) / "frames" / "notes.txt"  # inside a generated video's folder
    inside.write_text("also mine")
    with pytest.raises(FileExistsError, match="holds files the synthetic dataset did not write .*notes.txt"):
        generate(out, small(videos={"v2": {"train": 2}}), progress=False)
    assert notes.read_text() == "mine" and inside.read_text() == "also mine"
    notes.unlink()
    inside.unlink()
    assert generate(out, small(videos={"v2": {"train": 2}}), progress=False)["changed"]
