"""A DuckDB query over a 1M-row cue table written through the cache store, against the same
aggregation in pyarrow over the same Parquet parts (the library a script would otherwise use).

    .venv/bin/python bench/bench_duckdb.py [--quick]
"""
from __future__ import annotations

import json
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.store.cache_table import CacheTable
from pipeline.stages.lineage import CUES_SCHEMA
from pipeline.store.sql_views import connect

WORDS = ["dog", "man", "guitar", "piano", "car", "bird", "woman", "drum", "violin", "baby", "bell", "cat"]
QUERY = """
    SELECT cue, count(*) AS n FROM (SELECT unnest(cues) AS cue FROM cues WHERE status = 'ok')
    GROUP BY cue ORDER BY n DESC
"""


def write_table(root: str, rows: int, parts: int) -> CacheTable:
    table = CacheTable(root, "bench", "cues", {"bench": True}, CUES_SCHEMA)
    rng = np.random.default_rng(0)
    per = rows // parts
    for p in range(parts):
        n_cues = rng.integers(0, 4, per)
        cues = [[WORDS[j] for j in rng.integers(0, len(WORDS), k)] for k in n_cues]
        batch = pa.table({
            "dataset": pa.array(["bench"] * per), "subset": pa.array(["v2"] * per),
            "uid": pa.array([f"u{p}_{i // 10}" for i in range(per)]), "frame": pa.array(np.arange(per) % 10, pa.int32()),
            "cues": pa.array(cues, pa.list_(pa.string())), "status": pa.array(np.where(rng.random(per) < 0.98, "ok", "error")),
        })
        table.write(batch)
    return table


def run(quick: bool = False) -> dict:
    rows = 50_000 if quick else 1_000_000
    with tempfile.TemporaryDirectory(prefix="bench-duckdb-") as root:
        t0 = time.perf_counter()
        table = write_table(root, rows, parts=10)
        t_write = time.perf_counter() - t0
        con = connect(root)
        t0 = time.perf_counter()
        duck = con.execute(QUERY).fetchall()
        t_duck = time.perf_counter() - t0
        t0 = time.perf_counter()
        data = table.read(columns=["cues", "status"])
        ok = data.filter(pc.equal(data["status"], "ok"))
        counts = pc.value_counts(pc.list_flatten(ok["cues"]))
        arrow = sorted(((c["values"].as_py(), c["counts"].as_py()) for c in counts), key=lambda x: -x[1])
        t_arrow = time.perf_counter() - t0
    assert dict(duck) == dict(arrow), "DuckDB and pyarrow disagree"
    return {"rows": rows, "write_s": t_write, "duckdb_query_s": t_duck, "pyarrow_s": t_arrow, "ratio_pyarrow_over_duckdb": t_arrow / t_duck}


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
