"""Conformance: the readers on the files the real releases ship, not only on files our synthetic
generator writes. The files and where they come from: tests/fixtures/release/SOURCE.md."""
import shutil
from collections import Counter
from pathlib import Path

import pytest

from pipeline.data.avsbench import V3_SETTINGS, build_manifest, manifest_entries, read_label2idx
from pipeline.data.layout import SUBSETS
from pipeline.data.palette import NUM_CLASSES

RELEASE = Path(__file__).parents[2] / "fixtures" / "release"
GAVS_V3 = RELEASE / "gavs_v3"  # the GAVS repository's dataset/v3/ folder, as released

# Videos per role the AVS-V3 files list (GAVS paper and repository): train / val / test.
V3_COUNTS = {
    "zero_shot": {"train": 4807, "val": 535, "test": 758},
    "1_shot": {"train": 11, "val": 535, "test": 532},
    "3_shot": {"train": 33, "val": 535, "test": 510},
    "5_shot": {"train": 55, "val": 535, "test": 488},
}


@pytest.fixture(scope="module")
def gavs_root(tmp_path_factory) -> Path:
    """The GAVS layout: ROOT/v3/ holds the split files and its own copy of metadata.csv."""
    root = tmp_path_factory.mktemp("gavs")
    shutil.copytree(GAVS_V3, root / "v3")
    return root


@pytest.fixture(scope="module")
def avsbench_root(tmp_path_factory) -> Path:
    """The AVSBench layout: metadata.csv and label2idx.json at the root, the V3 files in ROOT/v3/."""
    root = tmp_path_factory.mktemp("avsbench")
    shutil.copytree(GAVS_V3, root / "v3")
    (root / "v3" / "metadata.csv").rename(root / "metadata.csv")
    shutil.copy(RELEASE / "label2idx.json", root / "label2idx.json")
    return root


def per_role(entries) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for e in entries:
        out.setdefault(e.split, set()).add(e.meta.uid)
    return out


@pytest.mark.parametrize("layout", ["gavs_root", "avsbench_root"])
@pytest.mark.parametrize("setting", V3_SETTINGS)
def test_each_v3_setting_gets_exactly_the_videos_its_files_list(setting, layout, request):
    root = request.getfixturevalue(layout)
    entries = manifest_entries(root, v3=setting)
    assert [e.bad.message for e in entries if e.bad] == []  # not one row rejected
    roles = per_role(entries)
    assert {role: len(uids) for role, uids in roles.items()} == V3_COUNTS[setting]
    assert len(entries) == sum(V3_COUNTS[setting].values())  # no uid listed twice in one file
    # seen and unseen never meet; the k-shot picks are unseen videos and never test videos
    zero = per_role(manifest_entries(root, v3="zero_shot"))
    assert not zero["train"] & zero["test"] and not zero["val"] & zero["test"] and not zero["train"] & zero["val"]
    if setting != "zero_shot":
        assert roles["train"] <= zero["test"] and roles["test"] <= zero["test"] and not roles["train"] & roles["test"]


def test_the_released_metadata_reads_every_video(avsbench_root):
    entries = manifest_entries(avsbench_root)
    assert [e.bad.message for e in entries if e.bad] == []
    # AVSBench-semantic: 4,932 V1S, 424 V1M and 6,000 V2 videos, 11,356 in all
    assert Counter(e.meta.subset for e in entries) == {"v1s": 4932, "v1m": 424, "v2": 6000}
    assert {e.split for e in entries} == {"train", "val", "test"}
    assert {e.meta.subset for e in entries} == set(SUBSETS)


def test_indexing_the_release_without_its_media_reports_every_frame_missing(gavs_root):
    table, summary = build_manifest(gavs_root, "avsbench", v3="1_shot", verify="header")
    rows = table.to_pylist()
    assert {r["uid"] for r in rows if r["split"] == "train"} == set(per_role(manifest_entries(gavs_root, v3="1_shot"))["train"])
    assert summary.ok == 0 and summary.errors == len(rows)
    assert all(r["frame"] >= 0 and r["error"].startswith("frame missing") for r in rows)


def test_the_released_label2idx_matches_the_palette():
    label2idx = read_label2idx(RELEASE)
    assert len(label2idx) == NUM_CLASSES and label2idx["background"] == 1
    assert sorted(label2idx.values()) == list(range(1, NUM_CLASSES + 1))
