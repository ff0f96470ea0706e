"""The incremental manifest: only new or changed videos are verified, unchanged ones keep their rows
without an image being read, removed ones disappear, and the result equals a full re-index."""
import shutil
import warnings
from collections import Counter

import pytest

import pipeline.data.avsbench as avsbench
from pipeline.data.avsbench import MANIFEST_SCHEMA, build_manifest
from pipeline.config import load_config
from pipeline.stages.lineage import ManifestStale, load_manifest, manifest_table
from pipeline.stages.manifest import run_manifest
from pipeline.data.synth import SynthConfig, generate

VIDEOS = {"v1s": {"train": 2, "val": 1, "test": 0}, "v1m": {"train": 1, "val": 0, "test": 0}, "v2": {"train": 1, "val": 0, "test": 0}}


def synth(root, videos=VIDEOS):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # too small for the V3 k-shot splits
        return generate(root, SynthConfig(seed=5, size=32, videos=videos, workers=1), progress=False)


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    root = tmp_path_factory.mktemp("manifest") / "data"
    synth(root)
    return root


@pytest.fixture
def root(clean, tmp_path):
    return shutil.copytree(clean, tmp_path / "data")


def config(root, cache, *extra):
    return load_config(None, [f"dataset.root={root}", f"cache.root={cache}", "run.progress=false", *extra])


@pytest.fixture
def verified(monkeypatch):
    """Counts the videos whose files get checked, by uid."""
    seen = Counter()
    real = avsbench._video_rows

    def counting(root, dataset, entry, verify):
        seen[entry.meta.uid] += 1
        return real(root, dataset, entry, verify)

    monkeypatch.setattr(avsbench, "_video_rows", counting)
    return seen


def plain(rows):
    """The MANIFEST_SCHEMA columns, to compare with build_manifest."""
    return rows.select(MANIFEST_SCHEMA.names).cast(MANIFEST_SCHEMA)


def uids(rows):
    return set(rows["uid"].to_pylist())


def test_unchanged_folder_reads_no_file_and_writes_nothing(root, tmp_path, monkeypatch):
    cfg = config(root, tmp_path / "cache")
    first = run_manifest(cfg)
    assert not first.reused and first.stage.computed == first.stage.total == 5
    assert plain(first.rows).equals(build_manifest(root, "synth")[0])
    parts = manifest_table(cfg).parts()

    def no_reading(*a, **k):
        raise AssertionError("an unchanged folder must not be read")

    monkeypatch.setattr(avsbench, "_check_image", no_reading)
    monkeypatch.setattr(avsbench, "audio_info", no_reading)
    again = run_manifest(cfg)
    assert again.reused and (again.stage.cached, again.stage.computed) == (5, 0)
    assert again.rows.equals(first.rows)
    assert manifest_table(cfg).parts() == parts


def test_added_changed_and_removed_videos(root, tmp_path, verified):
    cfg = config(root, tmp_path / "cache")
    run_manifest(cfg)
    assert len(verified) == 5
    old = uids(load_manifest(cfg))
    verified.clear()

    # more videos in one split: the old ones stay byte-identical, with their modification times
    files = [p for subset in ("v1s", "v1m", "v2") for p in (root / subset).rglob("*") if p.is_file()]
    stamps = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}
    bigger = {**VIDEOS, "v2": {"train": 3, "val": 0, "test": 0}}
    assert synth(root, bigger)["changed"]
    assert all((p.read_bytes(), p.stat().st_mtime_ns) == v for p, v in stamps.items())
    run = run_manifest(cfg)
    new = uids(run.rows) - old
    assert len(new) == 2 and set(verified) == new and all(n == 1 for n in verified.values())
    assert (run.stage.total, run.stage.cached, run.stage.computed, run.stage.extra["rows_verified"]) == (7, 5, 2, 20)
    assert plain(run.rows).equals(build_manifest(root, "synth")[0])

    # a changed frame: only its video is checked again, and its new rows replace the old ones
    verified.clear()
    victim = sorted((root / "v1s").iterdir())[0]
    (victim / "frames" / "2.jpg").write_bytes(b"not a jpeg any more")
    run = run_manifest(cfg)
    assert set(verified) == {victim.name} and run.stage.computed == 1
    rows = {(r["uid"], r["frame"]): r for r in run.rows.to_pylist()}
    assert rows[(victim.name, 2)]["status"] == "error" and "frame unreadable" in rows[(victim.name, 2)]["error"]
    assert run.rows.num_rows == 5 * 4 + 10 * 3  # no stale duplicates in the current state
    assert len(manifest_table(cfg)) == run.rows.num_rows + 5  # the old version stays in the table as history
    assert plain(run.rows).equals(build_manifest(root, "synth")[0])
    ok = {(r["uid"], r["frame"]) for r in load_manifest(cfg).to_pylist()}  # ok rows only
    assert (victim.name, 2) not in ok and (victim.name, 1) in ok
    assert len(load_manifest(cfg, ok_only=False)) == run.rows.num_rows

    # fewer videos: the removed ones disappear, nothing is checked
    verified.clear()
    synth(root, VIDEOS)
    run = run_manifest(cfg)
    assert uids(run.rows) == old and run.stage.total == 5
    assert set(verified) == {victim.name}  # its broken frame was rewritten by the generator: a new signature
    assert run.rows.num_rows == 5 * 4 + 10
    assert plain(run.rows).equals(build_manifest(root, "synth")[0])


def test_metadata_edits_and_bad_lines(root, tmp_path, verified):
    cfg = config(root, tmp_path / "cache")
    run_manifest(cfg)
    verified.clear()
    meta = root / "metadata.csv"
    lines = meta.read_text().splitlines()
    # change one video's a_obj, drop another's line, and add a malformed line
    header, first, second, *rest = lines
    cols = first.split(",")
    cols[4] = "drum" if cols[4] != "drum" else "dog"
    meta.write_text("\n".join([header, ",".join(cols), *rest, "only,three,fields"]) + "\n")
    run = run_manifest(cfg)
    assert set(verified) == {cols[1]}  # the edited row's video; the others keep their rows
    expected, _ = build_manifest(root, "synth")
    assert plain(run.rows).equals(expected)
    assert second.split(",")[1] not in uids(run.rows)
    assert ("line 6", -1) in {(r["uid"], r["frame"]) for r in run.rows.to_pylist() if r["status"] == "error"}
    assert run_manifest(cfg).reused


def test_filters_and_v3_roles_match_a_full_index(root, tmp_path, verified):
    for extra, kwargs in (
        (["dataset.subsets=[v1s]", "dataset.splits=[train]"], {"subsets": ["v1s"], "splits": ["train"]}),
        (["dataset.verify=header"], {"verify": "header"}),
        (["dataset.v3=zero_shot"], {"v3": "zero_shot"}),
    ):
        cfg = config(root, tmp_path / "cache", *extra)
        assert plain(run_manifest(cfg).rows).equals(build_manifest(root, "synth", **kwargs)[0]), extra
        assert run_manifest(cfg).reused


def test_reading_the_manifest_never_indexes(root, tmp_path):
    cfg = config(root, tmp_path / "cache")
    with pytest.raises(ManifestStale, match="5 of 5 videos .* run `teso index`"):
        load_manifest(cfg)
    assert not manifest_table(cfg).parts()  # the failed read wrote nothing
    run_manifest(cfg)
    parts = manifest_table(cfg).parts()
    assert uids(load_manifest(cfg)) == uids(run_manifest(cfg).rows)
    (root / "v1s" / sorted(p.name for p in (root / "v1s").iterdir())[0] / "frames" / "0.jpg").write_bytes(b"changed")
    with pytest.raises(ManifestStale, match="1 of 5 videos"):
        load_manifest(cfg)
    assert manifest_table(cfg).parts() == parts
