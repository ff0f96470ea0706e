"""DuckDB views over every cached table, so the caches are queryable with plain SQL.

Each stage folder name becomes a view over all of its Parquet parts, across datasets and
fingerprints (`union_by_name`, so an older fingerprint with fewer columns still reads); the
`fingerprint` column tells versions apart. Derived views join stages where both exist.
"""
from __future__ import annotations

import re
from pathlib import Path

import duckdb

_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")

# Views defined over other views; created only when every view they name exists.
DERIVED_VIEWS: dict[str, tuple[tuple[str, ...], str]] = {
    # One row per manifest frame with its most recently written caption and cues (a table may
    # hold several fingerprints; filter the base views by `fingerprint` to pick a specific one).
    "frame_text": (
        ("manifest", "captions", "cues"),
        """
        WITH c AS (SELECT * FROM captions WHERE status = 'ok'
                   QUALIFY row_number() OVER (PARTITION BY dataset, subset, uid, frame ORDER BY created_at DESC) = 1),
             q AS (SELECT * FROM cues
                   QUALIFY row_number() OVER (PARTITION BY dataset, subset, uid, frame ORDER BY created_at DESC) = 1)
        SELECT m.dataset, m.subset, m.split, m.uid, m.frame, m.frame_path,
               c.caption, c.model AS caption_model, q.cues, q.template, q.status AS cue_status, q.error AS cue_error
        FROM manifest m
        LEFT JOIN c USING (dataset, subset, uid, frame)
        LEFT JOIN q USING (dataset, subset, uid, frame)
        WHERE m.status = 'ok'
        """,
    ),
}


def stage_globs(cache_root: str | Path) -> dict[str, str]:
    """{stage name: glob of its parts} for every stage folder holding at least one part."""
    root = Path(cache_root)
    stages: dict[str, str] = {}
    for part in sorted(root.glob("*/*/*/part-*.parquet")):
        stage = part.parent.parent.name
        if _NAME.match(stage):
            stages.setdefault(stage, str(root / "*" / stage / "*" / "part-*.parquet"))
    return stages


def connect(cache_root: str | Path, database: str = ":memory:") -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(database)
    created = set()
    for stage, glob in stage_globs(cache_root).items():
        escaped = glob.replace("'", "''")
        con.execute(f"CREATE OR REPLACE VIEW {stage} AS SELECT * FROM read_parquet('{escaped}', union_by_name=true)")
        created.add(stage)
    for name, (needs, sql) in DERIVED_VIEWS.items():
        if set(needs) <= created and name not in created:
            con.execute(f"CREATE OR REPLACE VIEW {name} AS {sql}")
    return con


def describe_views(con: duckdb.DuckDBPyConnection) -> list[tuple[str, list[tuple[str, str]]]]:
    """[(view, [(column, type), ...]), ...] sorted by view name."""
    rows = con.execute(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'main' ORDER BY table_name, ordinal_position"
    ).fetchall()
    out: dict[str, list[tuple[str, str]]] = {}
    for table, column, dtype in rows:
        out.setdefault(table, []).append((column, dtype))
    return sorted(out.items())
