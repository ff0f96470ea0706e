"""The Parquet cache store every stage writes through (cache/README.md).

Layout: `ROOT/{dataset}/{stage}/{fingerprint}/` holding
  _meta.json              schema version, stage, key columns, the fingerprint's inputs, the schema
  part-{ns}-{id}.parquet  immutable parts, one per written batch
  .lock                   held (flock) while a batch is written and while a whole run is active

The fingerprint hashes everything that determines the output (model, prompt hash, generation
parameters, stage code version), so a changed prompt writes a new folder and old ones stay
inspectable. Every row carries its key columns plus `fingerprint` and `created_at`.

Why flock and not a lock-file library: `fcntl.flock` is released by the kernel when a process
dies, so a killed run never leaves a stale lock behind.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import time
import uuid
import warnings
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from pipeline.common.atomic import atomic_path, atomic_write_text, sweep_temporaries
from pipeline.common.errors import UserError

SCHEMA_VERSION = 1
KEY_COLUMNS = ("dataset", "subset", "uid", "frame")
PROVENANCE_FIELDS = (pa.field("fingerprint", pa.string()), pa.field("created_at", pa.timestamp("us", tz="UTC")))


class CacheError(UserError, RuntimeError):
    """A cache folder that this code cannot safely use."""


class LockTimeout(CacheError):
    pass


class DamagedPartWarning(UserWarning):
    """A Parquet part could not be read and was moved aside; its rows are recomputed on the next run."""


QUARANTINE_DIR = "quarantine"


def readable_part(part: Path, columns: Sequence[str] | None = None) -> bool:
    """Whether a part's footer (and with `columns`, those columns) can be read."""
    try:
        if columns is None:
            pq.ParquetFile(part).metadata  # noqa: B018 (reading the footer is the check)
        else:
            pq.read_table(part, columns=list(columns))
        return True
    except (OSError, pa.ArrowException):
        return False


def quarantine(part: Path) -> Path:
    """Move a damaged part into its folder's quarantine/ (outside every glob that reads parts),
    say so, and return where it went. Its keys are no longer cached, so the stage recomputes them."""
    dest = part.parent / QUARANTINE_DIR / part.name
    dest.parent.mkdir(exist_ok=True)
    try:
        os.replace(part, dest)
    except FileNotFoundError:  # another process moved it first
        return dest
    warnings.warn(f"damaged cache part {part} could not be read; moved to {dest}, its rows will be recomputed "
                  f"on the next run", DamagedPartWarning, stacklevel=2)
    return dest


def fingerprint_of(inputs: dict) -> str:
    """Stable short hash of a JSON-able dict (keys sorted, so order never matters)."""
    blob = json.dumps(inputs, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@contextmanager
def file_lock(path: Path, timeout_s: float, what: str) -> Iterator[None]:
    """Exclusive flock on `path`, polling until `timeout_s`; the message names what waits."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    raise LockTimeout(f"{what}: lock {path} still held after {timeout_s:.0f} s by another run") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock


class CacheTable:
    """One stage's table for one fingerprint: append-only Parquet parts keyed by `key_columns`."""

    def __init__(
        self,
        root: str | Path,
        dataset: str,
        stage: str,
        inputs: dict,
        schema: pa.Schema,
        key_columns: Sequence[str] = KEY_COLUMNS,
        lock_timeout_s: float = 3600.0,
    ):
        for name in key_columns:
            if schema.get_field_index(name) < 0:
                raise ValueError(f"key column {name!r} is not in the {stage} schema")
        self.dataset, self.stage, self.inputs = dataset, stage, inputs
        self.key_columns = tuple(key_columns)
        self.fingerprint = fingerprint_of({"stage": stage, "schema_version": SCHEMA_VERSION, **inputs})
        self.path = Path(root) / dataset / stage / self.fingerprint
        extra = [f for f in PROVENANCE_FIELDS if schema.get_field_index(f.name) < 0]
        self.schema = pa.schema(list(schema) + extra)
        self.lock_timeout_s = lock_timeout_s
        self._lock_path = self.path / ".lock"
        self._part_keys: dict[str, pa.Table] = {}  # part name -> its key columns; parts are immutable
        self._checked: set[str] = set()  # parts whose footer was read
        self._check_or_init_meta()
        sweep_temporaries(self.path)  # parts a killed writer left half-written

    # -- metadata -----------------------------------------------------------------------------
    def _meta(self) -> dict:
        return {
            "schema_version": SCHEMA_VERSION,
            "dataset": self.dataset,
            "stage": self.stage,
            "fingerprint": self.fingerprint,
            "key_columns": list(self.key_columns),
            "inputs": json.loads(json.dumps(self.inputs, default=str)),
            "schema": [[f.name, str(f.type)] for f in self.schema],
        }

    def _check_or_init_meta(self) -> None:
        meta_path = self.path / "_meta.json"
        if meta_path.exists():
            try:
                meta = json.loads(meta_path.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise CacheError(f"unreadable cache metadata {meta_path}: {exc}") from exc
            found = meta.get("schema_version")
            if found != SCHEMA_VERSION:
                raise CacheError(
                    f"cache {self.path} was written with schema version {found}, this code reads and writes "
                    f"version {SCHEMA_VERSION}; move or delete that folder (or point cache.root elsewhere) and re-run"
                )
            if meta.get("schema") != self._meta()["schema"]:
                raise CacheError(
                    f"cache {self.path} holds a different {self.stage} schema than this code writes "
                    f"({meta.get('schema')} vs {self._meta()['schema']}); bump SCHEMA_VERSION or the stage version"
                )
            return
        with file_lock(self._lock_path, self.lock_timeout_s, f"{self.stage} metadata"):
            if not meta_path.exists():
                atomic_write_text(meta_path, json.dumps(self._meta(), indent=2))

    # -- reading ------------------------------------------------------------------------------
    def parts(self) -> list[Path]:
        """The readable parts; one whose footer cannot be read is quarantined (checked once per
        part and object: parts never change once written)."""
        out = []
        for part in sorted(self.path.glob("part-*.parquet")):
            if part.name in self._checked or readable_part(part):
                self._checked.add(part.name)
                out.append(part)
            else:
                quarantine(part)
        return out

    def read(self, columns: Sequence[str] | None = None) -> pa.Table:
        parts = self.parts()
        if not parts:
            return self.schema.empty_table().select(list(columns) if columns else self.schema.names)
        try:
            return pads.dataset([str(p) for p in parts], schema=self.schema, format="parquet").to_table(columns=columns)
        except (OSError, pa.ArrowException):
            # a part with a sound footer and damaged pages: find it, move it aside, read the rest
            for part in parts:
                if not readable_part(part, columns or self.schema.names):
                    quarantine(part)
                    self._checked.discard(part.name)
                    self._part_keys.pop(part.name, None)
            return self.read(columns)

    def keys(self) -> pa.Table:
        """Key columns of every part. Parts never change once written, so each is read once per
        object: the per-batch checks of a long run cost the new parts, not all of them."""
        parts = self.parts()
        key_schema = pa.schema([self.schema.field(k) for k in self.key_columns])
        for part in parts:
            if part.name not in self._part_keys:
                try:
                    self._part_keys[part.name] = pq.read_table(part, columns=list(self.key_columns), schema=self.schema).cast(key_schema)
                except (OSError, pa.ArrowException):
                    quarantine(part)
        tables = [self._part_keys[p.name] for p in parts if p.name in self._part_keys]
        return pa.concat_tables(tables) if tables else key_schema.empty_table()

    def __len__(self) -> int:
        return sum(pq.ParquetFile(p).metadata.num_rows for p in self.parts())  # parts() checked the footers

    def missing(self, candidates: pa.Table) -> pa.Table:
        """Rows of `candidates` whose keys are not cached yet (a hash anti-join in Arrow)."""
        keys = list(self.key_columns)
        present = self.keys()
        if present.num_rows == 0 or candidates.num_rows == 0:
            return candidates
        cand_keys = candidates.select(keys).cast(present.schema)
        marked = cand_keys.append_column("__row", pa.array(range(candidates.num_rows), pa.int64()))
        left = marked.join(present, keys=keys, join_type="left anti")
        rows = sorted(left.column("__row").to_pylist())
        return candidates.take(pa.array(rows, pa.int64()))

    # -- writing ------------------------------------------------------------------------------
    @contextmanager
    def run_lock(self) -> Iterator[None]:
        """Held for a whole stage run, so two runs of one stage serialize instead of racing."""
        with file_lock(self.path / ".run.lock", self.lock_timeout_s, f"{self.stage} run"):
            yield

    def _conform(self, batch: pa.Table) -> pa.Table:
        # Provenance is this table's to set: a batch built against the full schema (the feature
        # store's index) arrives with these columns present but null, and they are filled too.
        n = batch.num_rows
        provenance = {"fingerprint": pa.array([self.fingerprint] * n, pa.string()),
                      "created_at": pa.array([datetime.now(timezone.utc)] * n, pa.timestamp("us", tz="UTC"))}
        for name, values in provenance.items():
            if name not in batch.column_names:
                batch = batch.append_column(name, values)
            elif batch[name].null_count:
                filled = pc.coalesce(batch[name], values.cast(batch.schema.field(name).type))
                batch = batch.set_column(batch.schema.get_field_index(name), name, filled)
        unknown = set(batch.column_names) - set(self.schema.names)
        if unknown:
            raise ValueError(f"{self.stage}: columns not in the schema: {sorted(unknown)}")
        absent = [f.name for f in self.schema if f.name not in batch.column_names]
        for name in absent:
            batch = batch.append_column(name, pa.nulls(n, self.schema.field(name).type))
        return batch.select(self.schema.names).cast(self.schema)

    def write(self, batch: pa.Table) -> Path | None:
        """Append one batch as an atomic part. Rows whose keys are already cached are dropped
        (a concurrent run got there first); duplicate keys inside the batch are a bug and raise.
        Returns the part written, or None when nothing was new."""
        batch = self._conform(batch)
        keys = batch.select(list(self.key_columns))
        if keys.group_by(list(self.key_columns)).aggregate([]).num_rows != keys.num_rows:
            raise ValueError(f"{self.stage}: batch has duplicate keys {self.key_columns}")
        with file_lock(self._lock_path, self.lock_timeout_s, f"{self.stage} write"):
            batch = self.missing(batch)
            if batch.num_rows == 0:
                return None
            final = self.path / f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
            with atomic_path(final) as tmp:
                pq.write_table(batch, tmp, compression="zstd")
        return final
