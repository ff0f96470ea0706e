import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import textwrap
import time

import pyarrow as pa
import pytest

from pipeline.store.cache_table import CacheError, CacheTable, LockTimeout, fingerprint_of
from pipeline.store.sql_views import connect, describe_views

SCHEMA = pa.schema(
    [
        ("dataset", pa.string()),
        ("subset", pa.string()),
        ("uid", pa.string()),
        ("frame", pa.int32()),
        ("caption", pa.string()),
        ("status", pa.string()),
        ("error", pa.string()),
    ]
)


def rows(uids, frames=(0, 1), caption="x"):
    recs = [
        {"dataset": "d", "subset": "v1s", "uid": u, "frame": f, "caption": f"{caption} {u} {f}", "status": "ok", "error": None}
        for u in uids
        for f in frames
    ]
    return pa.Table.from_pylist(recs, schema=SCHEMA)


def table(root, inputs=None):
    return CacheTable(root, "d", "captions", inputs or {"model": "m", "prompt_sha": "p"}, SCHEMA, lock_timeout_s=20)


def test_fingerprint_is_order_independent_and_sensitive():
    assert fingerprint_of({"a": 1, "b": [1, 2]}) == fingerprint_of({"b": [1, 2], "a": 1})
    assert fingerprint_of({"a": 1}) != fingerprint_of({"a": 2})


def test_round_trip_missing_and_provenance(tmp_path):
    t = table(tmp_path)
    assert t.path == tmp_path / "d" / "captions" / t.fingerprint
    t.write(rows(["a", "b"]))
    got = t.read()
    assert got.num_rows == 4
    assert set(got.column("fingerprint").to_pylist()) == {t.fingerprint}
    assert got.column("created_at").null_count == 0
    missing = t.missing(rows(["a", "c"]))
    assert sorted(zip(missing["uid"].to_pylist(), missing["frame"].to_pylist())) == [("c", 0), ("c", 1)]
    meta = json.loads((t.path / "_meta.json").read_text())
    assert meta["schema_version"] == 1 and meta["inputs"] == {"model": "m", "prompt_sha": "p"}


def test_rewriting_existing_keys_adds_nothing(tmp_path):
    t = table(tmp_path)
    t.write(rows(["a"]))
    assert t.write(rows(["a"])) is None
    part = t.write(rows(["a", "b"]))
    assert part is not None and len(t.parts()) == 2 and len(t) == 4


def test_duplicate_keys_in_one_batch_raise(tmp_path):
    t = table(tmp_path)
    batch = pa.concat_tables([rows(["a"]), rows(["a"])])
    with pytest.raises(ValueError, match="duplicate keys"):
        t.write(batch)


def test_new_inputs_give_new_folder(tmp_path):
    a, b = table(tmp_path, {"prompt_sha": "1"}), table(tmp_path, {"prompt_sha": "2"})
    assert a.path != b.path
    a.write(rows(["x"]))
    assert len(b) == 0


def test_schema_version_mismatch_is_a_clear_error(tmp_path):
    t = table(tmp_path)
    meta_path = t.path / "_meta.json"
    meta = json.loads(meta_path.read_text())
    meta["schema_version"] = 0
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(CacheError, match="schema version 0.*version 1"):
        table(tmp_path)


def test_interrupted_write_leaves_no_visible_part(tmp_path, monkeypatch):
    t = table(tmp_path)
    t.write(rows(["a"]))

    def boom(*args, **kwargs):
        raise KeyboardInterrupt  # as if the process were interrupted before the rename

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        t.write(rows(["b"]))
    monkeypatch.undo()
    assert len(t.parts()) == 1 and len(t) == 2
    assert not list(t.path.glob(".*.tmp"))
    assert connect(tmp_path).execute("SELECT count(*) FROM captions").fetchone()[0] == 2


def test_killed_writer_leaves_no_visible_part_and_no_stale_lock(tmp_path):
    script = textwrap.dedent(
        f"""
        import os, time, sys
        sys.path.insert(0, {str(os.path.dirname(__file__))!r})
        from test_cache_table import table, rows
        import pipeline.common.atomic as atomic
        t = table({str(tmp_path)!r})  # metadata first: its own atomic write must not be the one killed
        def hang(*a, **k):
            print("about-to-rename", flush=True)
            time.sleep(60)
        atomic.os.replace = hang
        t.write(rows(["k"]))
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "about-to-rename"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    t = table(tmp_path)
    assert t.parts() == [] and t.read().num_rows == 0
    assert not list(t.path.glob(".part-*.tmp"))  # opening the table swept the killed writer's temporary
    t.write(rows(["k"]))  # the kernel released the dead writer's lock
    assert len(t) == 2


def _writer(root, uids, barrier):
    barrier.wait()
    t = table(root)
    for u in uids:
        t.write(rows([u, "shared"]))


def test_concurrent_writers_neither_corrupt_nor_duplicate(tmp_path):
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), [f"{w}{i}" for i in range(8)], barrier)) for w in "pq"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    got = table(tmp_path).read()
    keys = list(zip(got["uid"].to_pylist(), got["frame"].to_pylist()))
    assert len(keys) == len(set(keys)) == (16 + 1) * 2


def _hold_run_lock(root, seconds, started):
    t = table(root)
    with t.run_lock():
        started.set()
        time.sleep(seconds)


def test_run_lock_serializes_runs(tmp_path):
    ctx = mp.get_context("spawn")
    started = ctx.Event()
    p = ctx.Process(target=_hold_run_lock, args=(str(tmp_path), 1.5, started))
    p.start()
    assert started.wait(30)
    t0 = time.monotonic()
    with table(tmp_path).run_lock():
        waited = time.monotonic() - t0
    p.join()
    assert waited > 0.5
    started2 = ctx.Event()
    p = ctx.Process(target=_hold_run_lock, args=(str(tmp_path), 3, started2))
    p.start()
    assert started2.wait(30)
    short = CacheTable(tmp_path, "d", "captions", {"model": "m", "prompt_sha": "p"}, SCHEMA, lock_timeout_s=0.2)
    with pytest.raises(LockTimeout, match="still held"):
        with short.run_lock():
            pass
    p.join()


def test_duckdb_views_return_exactly_the_written_rows(tmp_path):
    t = table(tmp_path)
    t.write(rows(["a", "b"]))
    t.write(rows(["c"], frames=(3,)))
    con = connect(tmp_path)
    got = con.sql("SELECT uid, frame, caption FROM captions ORDER BY uid, frame").fetchall()
    assert got == [("a", 0, "x a 0"), ("a", 1, "x a 1"), ("b", 0, "x b 0"), ("b", 1, "x b 1"), ("c", 3, "x c 3")]
    views = dict(describe_views(con))
    assert [c for c, _ in views["captions"]][:4] == ["dataset", "subset", "uid", "frame"]


def test_a_part_with_damaged_pages_is_quarantined_and_the_rest_still_reads(tmp_path):
    t = table(tmp_path)
    t.write(rows(["a"], caption="first " * 200))
    t.write(rows(["b"]))
    damaged = t.parts()[0]
    blob = bytearray(damaged.read_bytes())
    blob[8:400] = bytes(392)  # the data pages, footer intact: the footer check alone passes
    damaged.write_bytes(bytes(blob))
    fresh = table(tmp_path)
    with pytest.warns(UserWarning, match="damaged cache part"):
        got = fresh.read()
    assert sorted(set(got["uid"].to_pylist())) == ["b"]
    assert (damaged.parent / "quarantine" / damaged.name).exists()
    assert sorted(set(fresh.missing(rows(["a", "b"]))["uid"].to_pylist())) == ["a"]  # a is computed again
