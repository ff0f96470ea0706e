import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import soundfile as sf
from PIL import Image

from pipeline.data.avsbench import (
    MANIFEST_SCHEMA,
    V3_SETTINGS,
    DatasetError,
    binary_mask,
    build_manifest,
    decode_mask,
    load_frame,
    read_label2idx,
)
from pipeline.data.palette import index_to_rgb

SIZE = 32
HEADER = ["vid", "uid", "s_min", "s_sec", "a_obj", "split", "label"]
# uid -> (subset, split, class index painted in the masks)
VIDEOS = {
    "s_tr": ("v1s", "train", 1),
    "s_te": ("v1s", "test", 2),
    "m_va": ("v1m", "val", 3),
    "v_tr": ("v2", "train", 4),
    "v_te": ("v2", "test", 70),
}
FRAMES = {"v1s": 5, "v1m": 5, "v2": 10}
N_ROWS = 5 + 5 + 5 + 10 + 10


def class_map(cls: int, frame: int) -> np.ndarray:
    out = np.zeros((SIZE, SIZE), np.uint8)
    out[4 + frame : 20 + frame, 6:22] = cls
    return out


def metadata_row(uid: str) -> list[str]:
    subset, split, _ = VIDEOS[uid]
    return [f"yt_{uid}", uid, "0", "10", "guitar", split, subset]


def write_csv(path: Path, rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows([HEADER, *rows])


def write_dataset(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for uid, (subset, split, cls) in VIDEOS.items():
        vdir = root / subset / uid
        for sub in ("frames", "labels_rgb", "labels_semantic"):
            (vdir / sub).mkdir(parents=True)
        for i in range(FRAMES[subset]):
            Image.fromarray(rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)).save(vdir / "frames" / f"{i}.jpg")
            if subset == "v1s" and split == "train" and i > 0:
                continue  # AVSBench labels only the first frame of a v1s training video
            index = class_map(cls, i)
            Image.fromarray(index, mode="L").save(vdir / "labels_semantic" / f"{i}.png")
            Image.fromarray(index_to_rgb(index)).save(vdir / "labels_rgb" / f"{i}.png")
        sf.write(vdir / "audio.wav", np.zeros((FRAMES[subset] * 8000, 2), np.float32), 8000, subtype="PCM_16")
    write_csv(root / "metadata.csv", [metadata_row(uid) for uid in VIDEOS])
    (root / "label2idx.json").write_text(json.dumps({"background": 1, "guitar": 2, "dog": 3}))
    v3 = root / "v3"  # split values as the GAVS release writes them
    write_csv(v3 / "meta_v3_seen_train.csv", [v3_row("s_tr", "seen_train"), v3_row("v_tr", "seen_train")])
    write_csv(v3 / "meta_v3_seen_val.csv", [v3_row("m_va", "seen_val")])
    write_csv(v3 / "meta_v3_unseen.csv", [v3_row("s_te", "unseen"), v3_row("v_te", "unseen")])
    write_csv(v3 / "v3_1_shot" / "train.csv", [v3_row(u, "v3_1_shot_train") for u in ("s_tr", "v_tr", "s_te")])
    write_csv(v3 / "v3_1_shot" / "test.csv", [v3_row("v_te", "v3_1_shot_train")])
    return root


def v3_row(uid: str, split: str) -> list[str]:
    row = metadata_row(uid)
    return row[:5] + [split] + row[6:]


@pytest.fixture(scope="module")
def clean_root(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("avsbench") / "ds")


@pytest.fixture
def root(clean_root, tmp_path) -> Path:
    """A private copy to break."""
    return Path(shutil.copytree(clean_root, tmp_path / "ds"))


def by_key(table: pa.Table) -> dict[tuple[str, int], dict]:
    return {(r["uid"], r["frame"]): r for r in table.to_pylist()}


def test_clean_manifest_has_one_ok_row_per_frame(clean_root):
    table, summary = build_manifest(clean_root, "avsbench")
    assert table.schema == MANIFEST_SCHEMA
    assert table.num_rows == N_ROWS
    assert set(table.column("status").to_pylist()) == {"ok"}
    assert table.column("error").null_count == N_ROWS
    for subset, n in (("v1s", 10), ("v1m", 5), ("v2", 20)):
        assert table.column("subset").to_pylist().count(subset) == n
    rows = table.to_pylist()
    keys = [(r["subset"], r["split"], r["uid"], r["frame"]) for r in rows]
    assert keys == sorted(keys)
    r = by_key(table)[("v_te", 9)]
    assert r["frame_path"] == str(clean_root / "v2" / "v_te" / "frames" / "9.jpg")
    assert r["mask_semantic_path"] == str(clean_root / "v2" / "v_te" / "labels_semantic" / "9.png")
    assert r["split"] == "test" and r["vid"] == "yt_v_te" and r["a_obj"] == "guitar"
    assert r["audio_sr"] == 8000 and r["audio_seconds"] == pytest.approx(10.0)
    for r in rows:
        for col in ("frame_path", "audio_path", "mask_rgb_path", "mask_semantic_path"):
            assert r[col] is None or (Path(r[col]).is_absolute() and Path(r[col]).is_file())
    assert (summary.rows, summary.ok, summary.errors, summary.videos) == (N_ROWS, N_ROWS, 0, 5)
    assert not summary.error_kinds
    assert "35 rows over 5 videos, 35 ok, 0 with errors" in str(summary)


def test_v1s_train_has_a_mask_only_on_frame_0(clean_root):
    rows = by_key(build_manifest(clean_root, "avsbench", subsets=["v1s"])[0])
    assert rows[("s_tr", 0)]["has_mask"] and rows[("s_tr", 0)]["mask_rgb_path"]
    for i in range(1, 5):
        r = rows[("s_tr", i)]
        assert r["status"] == "ok" and not r["has_mask"]
        assert r["mask_rgb_path"] is None and r["mask_semantic_path"] is None
    assert all(rows[("s_te", i)]["has_mask"] for i in range(5))


def test_filters_select_subsets_and_splits(clean_root):
    table, _ = build_manifest(clean_root, "avsbench", subsets=["v2"], splits=["test"])
    assert set(table.column("uid").to_pylist()) == {"v_te"} and table.num_rows == 10
    table, _ = build_manifest(clean_root, "avsbench", splits=["train", "val"])
    assert set(table.column("uid").to_pylist()) == {"s_tr", "m_va", "v_tr"}
    with pytest.raises(ValueError, match="unknown subsets"):
        build_manifest(clean_root, "avsbench", subsets=["v3"])
    with pytest.raises(ValueError, match="unknown v3 setting"):
        build_manifest(clean_root, "avsbench", v3="2_shot")


def test_header_and_full_verify_and_worker_counts_agree_on_clean_data(clean_root):
    full, _ = build_manifest(clean_root, "avsbench", workers=1)
    assert build_manifest(clean_root, "avsbench", workers=4)[0].equals(full)
    assert build_manifest(clean_root, "avsbench", verify="header")[0].equals(full)


def roles(table: pa.Table) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for r in table.to_pylist():
        out.setdefault(r["split"], set()).add(r["uid"])
    return out


def test_v3_zero_shot_and_k_shot_roles(clean_root):
    assert V3_SETTINGS == ("zero_shot", "1_shot", "3_shot", "5_shot")
    zero, summary = build_manifest(clean_root, "avsbench", v3="zero_shot")
    assert roles(zero) == {"train": {"s_tr", "v_tr"}, "val": {"m_va"}, "test": {"s_te", "v_te"}}
    assert summary.errors == 0 and zero.num_rows == N_ROWS
    one, _ = build_manifest(clean_root, "avsbench", v3="1_shot")
    assert roles(one) == {"train": {"s_tr", "v_tr", "s_te"}, "val": {"m_va"}, "test": {"v_te"}}
    rows = by_key(one)
    # the v1s mask rule follows the metadata split, not the V3 role
    assert rows[("s_te", 3)]["split"] == "train" and rows[("s_te", 3)]["has_mask"]
    assert not rows[("s_tr", 3)]["has_mask"]
    test_only, _ = build_manifest(clean_root, "avsbench", v3="1_shot", splits=["test"])
    assert roles(test_only) == {"test": {"v_te"}}
    with pytest.raises(DatasetError, match="v3_3_shot/train.csv not found"):
        build_manifest(clean_root, "avsbench", v3="3_shot")


def test_v3_uid_missing_from_metadata_or_relabelled_is_an_error_row(root):
    ghost = ["yt_g", "ghost", "0", "1", "dog", "test", "v2"]
    relabelled = [*metadata_row("v_te")[:-1], "v1m"]
    write_csv(root / "v3" / "meta_v3_unseen.csv", [metadata_row("s_te"), ghost, relabelled])
    table, summary = build_manifest(root, "avsbench", v3="zero_shot")
    rows = by_key(table)
    assert rows[("ghost", -1)]["status"] == "error" and rows[("ghost", -1)]["split"] == "test"
    assert rows[("ghost", -1)]["error"] == (
        f"uid not in metadata.csv (listed at v3/meta_v3_unseen.csv line 3): {root / 'metadata.csv'}"
    )
    assert rows[("v_te", -1)]["error"] == (
        "split-file mismatch (label 'v1m' but metadata.csv line 6 says 'v2'): v3/meta_v3_unseen.csv line 4"
    )
    assert ("v_te", 0) not in rows
    assert summary.errors == 2 and summary.ok == N_ROWS - 10


def test_v3_split_value_naming_another_file_is_an_error_row(root):
    # an unseen video in the seen training file, a 3-shot pick in the 1-shot file
    write_csv(root / "v3" / "meta_v3_seen_train.csv", [v3_row("s_tr", "seen_train"), v3_row("v_tr", "unseen")])
    write_csv(root / "v3" / "v3_1_shot" / "test.csv", [v3_row("v_te", "v3_3_shot_train")])
    zero = by_key(build_manifest(root, "avsbench", v3="zero_shot")[0])
    assert zero[("s_tr", 0)]["status"] == "ok" and ("v_tr", 0) not in zero
    assert zero[("v_tr", -1)]["split"] == "train" and zero[("v_tr", -1)]["error"] == (
        "bad metadata row (split 'unseen' contradicts the file, whose rows say seen_train or train): "
        "v3/meta_v3_seen_train.csv line 3")
    one = by_key(build_manifest(root, "avsbench", v3="1_shot")[0])
    assert one[("v_te", -1)]["error"].startswith(
        "bad metadata row (split 'v3_3_shot_train' contradicts the file, whose rows say "
        "v3_1_shot_train or v3_1_shot_test or unseen or test)")


def test_a_uid_that_is_not_a_plain_name_is_an_error_row_and_nothing_outside_root_is_read(root):
    (root.parent / "outside").mkdir(exist_ok=True)
    rows = [metadata_row(u) for u in VIDEOS] + [["yt_x", "../outside", "0", "1", "dog", "test", "v2"],
                                                ["yt_y", ".hidden", "0", "1", "dog", "test", "v2"]]
    write_csv(root / "metadata.csv", rows)
    table, summary = build_manifest(root, "avsbench")
    got = {r["uid"]: r for r in table.to_pylist() if r["frame"] == -1}
    assert set(got) == {"../outside", ".hidden"} and summary.errors == 2
    assert got["../outside"]["error"] == ("bad metadata row (unsafe uid '../outside' may hold only letters, digits, "
                                          "'-', '_' and '.', and may not start with '.'): metadata.csv line 7")


def test_gavs_layout_reads_the_metadata_copy_in_v3(root):
    (root / "metadata.csv").rename(root / "v3" / "metadata.csv")
    table, summary = build_manifest(root, "avsbench", v3="zero_shot")
    assert roles(table) == {"train": {"s_tr", "v_tr"}, "val": {"m_va"}, "test": {"s_te", "v_te"}}
    assert summary.errors == 0
    assert build_manifest(root, "avsbench")[1].errors == 0
    (root / "v3" / "metadata.csv").unlink()
    with pytest.raises(DatasetError, match="metadata.csv not found.*nor the GAVS copy"):
        build_manifest(root, "avsbench")


def test_both_mask_encodings_decode_to_the_same_class_map(clean_root):
    vdir = clean_root / "v2" / "v_te"
    expected = class_map(70, 2).astype(np.int64)
    rgb = decode_mask(vdir / "labels_rgb" / "2.png", "rgb")
    sem = decode_mask(vdir / "labels_semantic" / "2.png", "semantic")
    assert rgb.dtype == np.int64 and rgb.shape == (SIZE, SIZE)
    assert np.array_equal(rgb, expected) and np.array_equal(sem, expected)
    assert np.array_equal(binary_mask(sem), expected > 0)
    with pytest.raises(ValueError, match="mask kind"):
        decode_mask(vdir / "labels_rgb" / "2.png", "gray")


def test_load_frame_and_label2idx(clean_root, tmp_path):
    im = load_frame(clean_root / "v1m" / "m_va" / "frames" / "0.jpg")
    assert im.mode == "RGB" and im.size == (SIZE, SIZE)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"garbage")
    with pytest.raises(DatasetError, match=r"frame unreadable \(cannot identify image file\)"):
        load_frame(bad)
    assert read_label2idx(clean_root) == {"background": 1, "guitar": 2, "dog": 3}
    (tmp_path / "label2idx.json").write_text('{"background": "one"}')
    with pytest.raises(DatasetError, match="integer ids"):
        read_label2idx(tmp_path)


def test_missing_metadata_or_columns_is_a_dataset_error(root):
    (root / "metadata.csv").write_text("vid,uid,split\nx,y,train\n")
    with pytest.raises(DatasetError, match="lacks columns"):
        build_manifest(root, "avsbench")
    (root / "metadata.csv").unlink()
    with pytest.raises(DatasetError, match="metadata.csv not found"):
        build_manifest(root, "avsbench")


def test_broken_files_and_lines_become_error_rows_and_the_rest_stays_intact(root):
    v2, v1s, v1m = root / "v2", root / "v1s", root / "v1m"
    jpg = v2 / "v_tr" / "frames" / "3.jpg"
    jpg.write_bytes(jpg.read_bytes()[:-200])  # truncated: header intact, data cut
    cut_header = v2 / "v_tr" / "frames" / "6.jpg"
    cut_header.write_bytes(cut_header.read_bytes()[:200])  # truncated inside the header
    (v2 / "v_te" / "frames" / "0.jpg").write_bytes(b"this is not a jpeg")
    (v2 / "v_tr" / "labels_rgb" / "7.png").write_bytes(b"\x89PNG but not really")
    (v1s / "s_te" / "frames" / "2.jpg").unlink()
    (v1m / "m_va" / "labels_semantic" / "1.png").unlink()
    (v1m / "m_va" / "audio.wav").write_bytes(b"RIFF garbage garbage garbage")
    Image.fromarray(np.zeros((16, 16), np.uint8), mode="L").save(v1s / "s_te" / "labels_semantic" / "4.png")
    Image.fromarray(np.full((SIZE, SIZE), 200, np.uint8), mode="L").save(v2 / "v_tr" / "labels_semantic" / "5.png")
    with (root / "metadata.csv").open("a", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["yt_x", "", "0", "1", "dog", "train", "v2"])  # line 7: missing uid
        w.writerow(["yt_y", "bad_label", "0", "1", "dog", "train", "v9"])  # line 8
        w.writerow(["yt_z", "bad_split", "0", "1", "dog", "holdout", "v2"])  # line 9
        w.writerow(["yt_w", "short", "0"])  # line 10: wrong column count
        w.writerow(metadata_row("s_te"))  # line 11: duplicate uid

    table, summary = build_manifest(root, "avsbench", workers=3)
    rows = by_key(table)
    assert table.num_rows == N_ROWS + 5
    err = {k: r["error"] for k, r in rows.items() if r["status"] == "error"}
    assert err[("v_tr", 3)].startswith("frame unreadable (image file is truncated (")
    assert err[("v_tr", 3)].endswith(f"bytes not processed)): {jpg}")
    assert err[("v_tr", 6)] == f"frame unreadable (Truncated File Read): {cut_header}"
    assert err[("v_te", 0)] == f"frame unreadable (cannot identify image file): {v2 / 'v_te' / 'frames' / '0.jpg'}"
    assert err[("s_te", 2)] == f"frame missing: {v1s / 's_te' / 'frames' / '2.jpg'}"
    assert err[("v_tr", 7)] == f"mask unreadable (cannot identify image file): {v2 / 'v_tr' / 'labels_rgb' / '7.png'}"
    sem4 = v1s / "s_te" / "labels_semantic" / "4.png"
    assert err[("s_te", 4)] == f"mask size mismatch (16x16, frame is 32x32): {sem4}"
    assert err[("v_tr", 5)].startswith("mask invalid (class value 200 outside 0..70)")
    wav = v1m / "m_va" / "audio.wav"
    audio_msg = f"audio unreadable (Format not recognised): {wav}"
    assert err[("m_va", 1)] == f"mask missing: {v1m / 'm_va' / 'labels_semantic' / '1.png'}; {audio_msg}"
    for i in (0, 2, 3, 4):
        assert err[("m_va", i)] == audio_msg
        assert rows[("m_va", i)]["audio_sr"] is None and rows[("m_va", i)]["audio_seconds"] is None
    assert err[("line 7", -1)] == "bad metadata row (missing uid): metadata.csv line 7"
    assert err[("bad_label", -1)] == "bad metadata row (unknown label 'v9' not in v1s/v1m/v2): metadata.csv line 8"
    assert err[("bad_split", -1)] == (
        "bad metadata row (unknown split 'holdout' not in train/val/test): metadata.csv line 9"
    )
    assert err[("line 10", -1)] == "bad metadata row (3 columns, header has 7): metadata.csv line 10"
    assert err[("s_te", -1)] == "duplicate uid (first listed at metadata.csv line 3): metadata.csv line 11"
    assert rows[("bad_split", -1)]["subset"] == "v2" and rows[("bad_label", -1)]["subset"] == "v9"
    assert len(err) == 7 + 5 + 5  # 7 broken frames, 5 audio-less m_va frames, 5 bad lines

    # every other row is still there and clean
    ok = [r for r in table.to_pylist() if r["status"] == "ok"]
    assert len(ok) == N_ROWS - 12 and all(r["error"] is None for r in ok)
    assert rows[("v_tr", 4)]["status"] == "ok" and rows[("s_te", 3)]["audio_sr"] == 8000

    assert (summary.rows, summary.ok, summary.errors, summary.videos) == (N_ROWS + 5, N_ROWS - 12, 17, 5)
    assert summary.error_kinds == {
        "frame unreadable": 3, "frame missing": 1,
        "mask size mismatch": 1, "mask invalid": 1, "mask missing": 1, "mask unreadable": 1,
        "audio unreadable": 5, "bad metadata row": 4, "duplicate uid": 1,
    }
    assert "audio unreadable x5" in str(summary)

    # header verification opens files without decoding: the truncated JPEG and the bad class value pass
    header = by_key(build_manifest(root, "avsbench", verify="header")[0])
    assert header[("v_tr", 3)]["status"] == "ok" and header[("v_tr", 5)]["status"] == "ok"
    assert header[("v_te", 0)]["status"] == "error" and header[("v_tr", 6)]["status"] == "error"

    # filters keep a bad line only where its own (valid) value matches
    v1s_only = by_key(build_manifest(root, "avsbench", subsets=["v1s"])[0])
    assert ("bad_split", -1) not in v1s_only and ("bad_label", -1) in v1s_only and ("line 10", -1) in v1s_only
