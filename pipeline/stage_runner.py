"""The incremental loop every per-frame stage shares: plan what is missing, then work shard by
shard, batch by batch, writing each batch atomically.

A kill therefore loses at most the batch in flight; a re-run sees the written batches as
cached. The worker (a loaded model) is created only when a shard has work, once per shard, so a
re-run with nothing new never loads a model.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Generic, Iterator, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
from tqdm.auto import tqdm

from pipeline.cache_store import CacheTable

W = TypeVar("W")


@dataclass
class ShardResult:
    computed: int = 0
    errors: int = 0
    skipped: int = 0  # already written by a concurrent or retried run when the batch came up
    loaded: bool = False  # whether this shard had to load its worker (model)


@dataclass
class StageSummary:
    stage: str
    fingerprint: str
    path: str
    total: int
    cached: int
    computed: int = 0
    errors: int = 0
    seconds: float = 0.0
    model_loaded: bool = False
    extra: dict = field(default_factory=dict)

    def __str__(self) -> str:
        return (
            f"{self.stage} [{self.fingerprint}]: {self.total} keys, {self.cached} already cached, "
            f"{self.computed} computed ({self.errors} errors) in {self.seconds:.1f} s -> {self.path}"
        )


def batches(rows: pa.Table, size: int) -> Iterator[pa.Table]:
    for start in range(0, rows.num_rows, size):
        yield rows.slice(start, size)


def split_shards(rows: pa.Table, n: int) -> list[pa.Table]:
    """Contiguous shards of nearly equal size (contiguous keeps a video's frames together)."""
    n = max(1, min(n, rows.num_rows))
    step = -(-rows.num_rows // n)
    return [rows.slice(i, step) for i in range(0, rows.num_rows, step)]


def write_rows(table: CacheTable, rows: pa.Table) -> int:
    """Write one batch of rows; returns how many are error rows."""
    table.write(rows)
    return int(pc.sum(pc.equal(rows["status"], "error")).as_py() or 0)


@dataclass
class ShardJob(Generic[W]):
    """How one stage turns a batch of keys into cached rows: `make_worker` loads the model once,
    `process(worker, batch)` computes and writes the batch (atomically) and returns its error count."""

    table: CacheTable
    make_worker: Callable[[], W]
    process: Callable[[W, pa.Table], int]
    batch_size: int
    progress: bool = True
    desc: str = ""

    def run(self, shard: pa.Table) -> ShardResult:
        result = ShardResult()
        worker: W | None = None
        loaded = False  # a worker may legitimately be None (the noun parser needs no model)
        bar = tqdm(total=shard.num_rows, desc=self.desc or self.table.stage, unit="row", disable=not self.progress)
        with bar:
            for batch in batches(shard, self.batch_size):
                todo = self.table.missing(batch)
                result.skipped += batch.num_rows - todo.num_rows
                if todo.num_rows:
                    if not loaded:
                        worker, loaded = self.make_worker(), True
                    result.errors += self.process(worker, todo)
                    result.computed += todo.num_rows
                bar.update(batch.num_rows)
        result.loaded = loaded
        return result
