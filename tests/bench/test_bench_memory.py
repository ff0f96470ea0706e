"""The memory benchmark (bench/bench_memory.py) on the quick model: one child process, as `make bench` runs it."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("bench_memory", ROOT / "bench" / "bench_memory.py")
bench_memory = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_memory)
sys.path.insert(0, str(ROOT / "bench"))


def test_a_training_step_needs_more_memory_for_a_larger_batch_and_the_table_shows_each_row(tmp_path):
    from bench_train import make_foundation

    foundation = make_foundation(tmp_path / "m2f", quick=True)
    cmd = [sys.executable, str(ROOT / "bench" / "bench_memory.py"), "--child", "train", "--foundation", foundation,
           "--device", "cpu", "--size", "64", "--batch-sizes", "1", "8", "--quick"]
    row = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])
    assert row["model_mib"] > 0 and row["trainable_params"] < row["total_params"]
    assert row["peak_mib"]["8"] > row["peak_mib"]["1"] > 0  # activations grow with the batch
    table = bench_memory.table({"rows": [row]})
    assert table.splitlines()[0] == "| mode | image | model (MiB) | batch 1 | batch 8 |"
    assert table.splitlines()[2].startswith("| train | 64px |")


def test_the_readme_memory_table_is_the_table_of_the_saved_run():
    saved = json.loads((ROOT / "bench" / "memory_runs" / "2026-12-03_cpu.json").read_text())
    assert bench_memory.table(saved) in (ROOT / "README.md").read_text()
