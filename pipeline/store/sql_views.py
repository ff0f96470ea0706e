"""DuckDB views over every cached table, so the caches are queryable with plain SQL.

Each stage folder name becomes a view over all of its Parquet parts, across datasets and
fingerprints (`union_by_name`, so an older fingerprint with fewer columns still reads); the
`fingerprint` column tells versions apart. Derived views join stages where both exist.
"""
from __future__ import annotations

import re
from pathlib import Path

import duckdb

from pipeline.common.errors import UserError
from pipeline.store.cache_table import quarantine, readable_part

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


def stage_parts(cache_root: str | Path) -> dict[str, list[str]]:
    """{stage name: its readable parts} for every stage folder holding at least one. A part whose
    footer cannot be read is quarantined (cache_table.quarantine), so one damaged file neither
    breaks its view nor any other."""
    root = Path(cache_root)
    stages: dict[str, list[str]] = {}
    for part in sorted(root.glob("*/*/*/part-*.parquet")):
        stage = part.parent.parent.name
        if not _NAME.match(stage):
            continue
        if readable_part(part):
            stages.setdefault(stage, []).append(str(part))
        else:
            quarantine(part)
    return stages


# What `teso sql` runs unless --full-access: queries only (SELECT, including DESCRIBE and SHOW,
# and EXPLAIN); no COPY, ATTACH, INSTALL, SET, CREATE or writes, which the file limits below
# would still allow inside the cache folder.
READ_ONLY_STATEMENTS = (duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN)


def connect(cache_root: str | Path, database: str = ":memory:", read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with one view per stage (and the derived views). `read_only` then
    limits the connection for good (`lock_configuration`): no file outside the cache can be read
    or written, no extension installed or loaded (DuckDB's `enable_external_access` with the cache
    as the only `allowed_directories`). Pair it with check_read_only for each statement."""
    con = duckdb.connect(database)
    created = set()
    for stage, parts in stage_parts(cache_root).items():
        files = ", ".join("'" + p.replace("'", "''") + "'" for p in parts)
        con.execute(f"CREATE OR REPLACE VIEW {stage} AS SELECT * FROM read_parquet([{files}], union_by_name=true)")
        created.add(stage)
    for name, (needs, sql) in DERIVED_VIEWS.items():
        if set(needs) <= created and name not in created:
            con.execute(f"CREATE OR REPLACE VIEW {name} AS {sql}")
    if read_only:
        allowed = str(Path(cache_root).resolve()).replace("'", "''") + "/"
        con.execute(f"SET allowed_directories = ['{allowed}']")
        for setting in ("enable_external_access", "autoinstall_known_extensions", "autoload_known_extensions"):
            con.execute(f"SET {setting} = false")
        con.execute("SET lock_configuration = true")
    return con


class ReadOnlyQuery(UserError):
    """A statement `teso sql` does not run without --full-access."""


def check_read_only(con: duckdb.DuckDBPyConnection, query: str) -> None:
    """Raise ReadOnlyQuery unless every statement of `query` only reads."""
    for statement in con.extract_statements(query):
        if statement.type not in READ_ONLY_STATEMENTS:
            raise ReadOnlyQuery(f"{statement.type.name} statements are not run over the cache (queries only: SELECT, "
                                f"DESCRIBE, SHOW, EXPLAIN); pass --full-access to run any statement")


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
