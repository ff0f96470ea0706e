"""The scale benchmark's sizes and its hard-linked dataset prefixes (bench/bench_scale.py)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from pipeline.data.synth import SynthConfig, generate

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("bench_scale", ROOT / "bench" / "bench_scale.py")
bench_scale = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_scale)


def test_full_size_is_the_release():
    videos = bench_scale.counts(1.0)
    assert sum(sum(s.values()) for s in videos.values()) == 11356
    assert bench_scale.frames_of(videos) == 86780
    assert bench_scale.counts(1.0, 0.01)["v2"]["train"] == 4750 + 60  # +1% of V2's 6,000 videos, as training videos


@pytest.mark.filterwarnings("ignore:dataset too small for the AVS-V3")
def test_a_prefix_dataset_is_what_the_generator_writes_at_that_size(tmp_path):
    small = {"v1s": {"train": 2, "val": 1, "test": 1}, "v2": {"train": 1}}
    big = {"v1s": {"train": 3, "val": 1, "test": 1}, "v2": {"train": 2}}
    generate(tmp_path / "pool", SynthConfig(seed=0, size=32, videos=big, workers=1), progress=False)
    generate(tmp_path / "direct", SynthConfig(seed=0, size=32, videos=small, workers=1), progress=False)
    out = tmp_path / "prefix"
    bench_scale.build_dataset(tmp_path / "pool", out, small)
    files = lambda root: sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and "v3" not in p.parts)
    assert files(out) == files(tmp_path / "direct")
    for name in files(out):  # byte-identical: video i of a subset and split does not depend on the size
        assert (out / name).read_bytes() == (tmp_path / "direct" / name).read_bytes(), name
    frame = next((out / "v1s").rglob("*.jpg"))
    assert frame.stat().st_ino == (tmp_path / "pool" / frame.relative_to(out)).stat().st_ino  # linked, not copied
    before = frame.stat().st_mtime_ns
    bench_scale.build_dataset(tmp_path / "pool", out, big)  # growing leaves the old files untouched
    assert frame.stat().st_mtime_ns == before
    assert len(json.loads("[" + ",".join((out / "scene_descriptions.jsonl").read_text().splitlines()) + "]")) == 4 * 5 + 2 * 10 + 5


def test_the_readme_table_is_the_table_of_the_saved_runs():
    runs = sorted((ROOT / "bench" / "scale_runs").glob("*.json"))
    sizes = sorted((s for p in runs for s in json.loads(p.read_text())["sizes"]), key=lambda s: s["fraction"])
    text = bench_scale.table({"sizes": sizes})
    assert [s["fraction"] for s in sizes] == [0.01, 0.1, 1.0]
    assert "| index | 1/1 | 86,780 |" in text
    readme = (ROOT / "README.md").read_text()
    assert text in readme  # the README's scale table is generated, not typed


def test_a_child_measures_its_own_peak_not_its_parents():
    """ru_maxrss is inherited across fork and exec on Linux; the benchmark's VmHWM is not."""
    import resource
    import subprocess
    import sys

    ballast = bytearray(300 * 1024 * 1024)
    ballast[::4096] = b"\x01" * len(ballast[::4096])  # touch every page: 300 MiB resident here
    code = ("import importlib.util, resource, sys; spec = importlib.util.spec_from_file_location('b', sys.argv[1]); "
            "b = importlib.util.module_from_spec(spec); spec.loader.exec_module(b); "
            "print(b.peak_rss_mib(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
    out = subprocess.run([sys.executable, "-c", code, str(ROOT / "bench" / "bench_scale.py")],
                         capture_output=True, text=True, check=True).stdout.split()
    ours, inherited = float(out[0]), float(out[1])
    assert inherited >= 300  # what the old measure reported for the child
    assert ours < 250  # the child itself: an interpreter and the benchmark's imports
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 >= 300
    del ballast
