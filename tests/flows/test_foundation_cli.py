"""End to end through the `teso` CLI: synth -> index (Prefect flow) -> sql, on a tiny dataset."""
import shutil

import pytest

from flows.cli import main
from pipeline.config import load_config
from pipeline.stages.lineage import manifest_table

TINY = "synth.videos={v1s: {train: 3, val: 1, test: 1}, v1m: {train: 2, val: 1, test: 1}, v2: {train: 2, val: 1, test: 1}}"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "data"
    assert main(["data", "synth", "--out", str(root), "--seed", "3", "synth.size=48", TINY]) == 0
    return root


def overrides(root, cache):
    return [f"dataset.root={root}", f"cache.root={cache}", "run.progress=false"]


def test_synth_then_index_has_no_error_rows_and_is_reused(dataset, tmp_path, capsys):
    args = overrides(dataset, tmp_path / "cache")
    assert main(["index", *args]) == 0
    cfg = load_config(None, args)
    table = manifest_table(cfg)
    rows = table.read()
    frames = 5 * (5 + 4) + 10 * 4  # v1s and v1m: 5 frames; v2: 10
    assert rows.num_rows == frames
    assert set(rows["status"].to_pylist()) == {"ok"}
    assert (table.path / "config.yaml").exists()
    parts = table.parts()
    assert main(["index", *args]) == 0  # unchanged folder: the cached manifest is reused
    assert table.parts() == parts
    capsys.readouterr()
    assert main(["sql", "--set", f"cache.root={tmp_path / 'cache'}", "SELECT count(*) AS n FROM manifest WHERE status = 'ok'"]) == 0
    assert str(frames) in capsys.readouterr().out
    assert main(["sql", "--set", f"cache.root={tmp_path / 'cache'}"]) == 0
    listing = capsys.readouterr().out
    assert "manifest" in listing and "frame_path" in listing


def test_corrupt_and_missing_files_become_error_rows(dataset, tmp_path):
    root = tmp_path / "broken"
    shutil.copytree(dataset, root)
    v2_train = sorted((root / "v2").iterdir())[0]
    (v2_train / "frames" / "3.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (v2_train / "labels_semantic" / "4.png").unlink()
    v1m = sorted((root / "v1m").iterdir())[0]
    (v1m / "audio.wav").write_bytes(b"RIFF garbage")
    with open(root / "metadata.csv", "a") as fh:
        fh.write("only,three,fields\n")
    args = overrides(root, tmp_path / "cache")
    assert main(["index", *args]) == 0
    rows = manifest_table(load_config(None, args)).read().to_pylist()
    errors = {(r["uid"], r["frame"]): r["error"] for r in rows if r["status"] == "error"}
    assert "frame unreadable" in errors[(v2_train.name, 3)]
    assert "mask missing" in errors[(v2_train.name, 4)]
    assert all("audio" in errors[(v1m.name, f)] for f in range(5))
    assert any(uid.startswith("line") or f == -1 for uid, f in errors)  # the malformed metadata line
    assert len(errors) == 2 + 5 + 1
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) == 5 * 9 + 10 * 4 - 7  # every other row intact


def test_bad_config_is_one_clear_message(dataset, tmp_path, capsys):
    assert main(["index", f"dataset.root={tmp_path / 'absent'}", "dataset.colour=red"]) == 2
    err = capsys.readouterr().err
    assert "dataset.colour: unknown key" in err
    assert main(["index", f"dataset.root={tmp_path / 'absent'}"]) == 2
    assert "path does not exist" in capsys.readouterr().err


def test_sql_is_read_only_over_the_cache_unless_asked(dataset, tmp_path, capsys):
    args = overrides(dataset, tmp_path / "cache")
    assert main(["index", *args]) == 0
    cache = f"cache.root={tmp_path / 'cache'}"
    outside = tmp_path / "secret.csv"
    outside.write_text("a\n1\n")
    capsys.readouterr()
    for query in (f"SELECT * FROM read_csv('{outside}')",  # a file outside the cache
                  f"COPY (SELECT 1) TO '{tmp_path / 'cache' / 'x.csv'}'",  # a write, even inside it
                  f"ATTACH '{tmp_path / 'db.duckdb'}'", "INSTALL httpfs", "SET enable_external_access = true",
                  "CREATE TABLE t AS SELECT 1"):
        assert main(["sql", "--set", cache, query]) == 2, query
        err = capsys.readouterr().err
        assert err.startswith("teso sql: ") and "Traceback" not in err and err.count("\n") == 1, err
    assert not (tmp_path / "cache" / "x.csv").exists() and not (tmp_path / "db.duckdb").exists()
    assert main(["sql", "--set", cache, "SELECT count(*) FROM manifest; DESCRIBE manifest"]) == 0
    assert main(["sql", "--set", cache, "--full-access", f"SELECT * FROM read_csv('{outside}')"]) == 0
    assert main(["sql", "--set", cache, "SELEC nonsense"]) == 2  # a syntax error is one message too
    assert "Parser Error" in capsys.readouterr().err


def test_a_damaged_part_is_moved_aside_and_its_rows_recomputed(dataset, tmp_path, capsys):
    args = overrides(dataset, tmp_path / "cache")
    assert main(["index", *args]) == 0
    table = manifest_table(load_config(None, args))
    rows = table.read().num_rows
    part = table.parts()[0]
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])  # truncated: a torn copy
    with pytest.warns(UserWarning, match="damaged cache part .* moved to .*quarantine"):
        assert main(["sql", "--set", f"cache.root={tmp_path / 'cache'}", "SELECT 1"]) == 0
    assert (part.parent / "quarantine" / part.name).exists() and not part.exists()
    assert main(["index", *args]) == 0  # the next run indexes the lost rows again
    assert manifest_table(load_config(None, args)).read().num_rows == rows


def test_a_stage_run_out_of_order_ends_in_one_message_without_a_traceback(dataset, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "HF_HUB_OFFLINE": "1"}
    env = {k: v for k, v in env.items() if k != "PREFECT_API_URL"}
    f = tmp_path / "foundation"
    proc = subprocess.run(
        [sys.executable, "-m", "flows.cli", "train", "--config", "configs/tiny.yaml", "--run", "teso", *overrides(dataset, tmp_path / "cache"),
         f"train.out_dir={tmp_path / 'runs'}", f"foundation.out={f}", f"train.model.foundation={f}"],
        cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    assert any(line.startswith("teso train: no text features in ") and line.endswith("run `teso features` first")
               for line in proc.stderr.splitlines())
