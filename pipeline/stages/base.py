"""What every stage shares: the Stage description, and the incremental loop of the sharded stages.

A stage names the tables it reads, the table it writes (whose fingerprint, computed in
pipeline.stages.lineage, is the stage's identity) and how it runs. Sharded stages (captions, cues,
audio and text features) plan what is missing, then work shard by shard, batch by batch, writing
each batch atomically: a kill loses at most the batch in flight, and a re-run sees the written
batches as cached. The worker (a loaded model) is created only when a shard has work, once per
shard, so a re-run with nothing new never loads a model. Where shards run is the caller's choice
(`map_shards`): in this process, or as Prefect tasks on a thread, Dask or Ray runner (flows/).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterator, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
from tqdm.auto import tqdm

from pipeline.config import Config, save_effective_config
from pipeline.stages import workers
from pipeline.store.cache_table import CacheTable

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


@dataclass(frozen=True)
class Stage:
    """A stage that runs as one piece (manifest, train, evaluate)."""

    name: str
    reads: tuple[str, ...]  # the tables it reads (lineage names)
    writes: str  # what it writes: a lineage table, or a folder
    run: Callable[..., Any]


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


def table_job(cfg: Config, table: CacheTable, build: Callable[[], Any], rows: Callable[[Any, pa.Table], pa.Table], batch_size: int) -> ShardJob:
    """The job of a stage whose batches become rows of one cache table (captions, cues): `build`
    loads the model (once per process and fingerprint), `rows(model, batch)` computes a batch's rows."""
    return ShardJob(
        table=table,
        make_worker=lambda: workers.get_worker(f"{table.stage}:{table.fingerprint}", build),
        process=lambda worker, batch: write_rows(table, rows(worker, batch)),
        batch_size=batch_size,
        progress=cfg.run.progress,
        desc=table.stage,
    )


# map_shards(stage, cfg, variant, shards) -> one ShardResult per shard, however they are run
MapShards = Callable[["ShardedStage", Config, "str | None", "list[pa.Table]"], "list[ShardResult]"]


def map_in_process(stage: "ShardedStage", cfg: Config, variant: str | None, shards: list[pa.Table]) -> list[ShardResult]:
    return [stage.run_shard(cfg, shard, variant) for shard in shards]


@dataclass(frozen=True)
class ShardedStage:
    """A stage whose work is a table of keys (frames or videos), cut into shards.

    Per variant (audio features: one per audio condition; the others have the single variant None)
    it writes one table. `candidates` are every key the stage should hold; the missing ones are cut
    into `shards(cfg)` shards, and `job` says how one shard is computed."""

    name: str
    reads: tuple[str, ...]
    table: Callable[[Config, str | None], CacheTable]  # the table written; its fingerprint is the identity
    candidates: Callable[[Config], pa.Table]
    job: Callable[[Config, str | None], ShardJob]
    shards: Callable[[Config], int]
    variants: Callable[[Config], list[str | None]] = lambda cfg: [None]

    @property
    def writes(self) -> str:
        return self.name

    def run_shard(self, cfg: Config, shard: pa.Table, variant: str | None) -> ShardResult:
        return self.job(cfg, variant).run(shard)

    def run(self, cfg: Config, map_shards: MapShards = map_in_process) -> list[StageSummary]:
        """Every variant in turn: plan under the table's run lock (so a second run of the same stage
        waits and then finds nothing left to do), run the missing shards, summarize."""
        candidates = self.candidates(cfg)
        summaries = []
        for variant in self.variants(cfg):
            t0 = time.perf_counter()
            table = self.table(cfg, variant)
            save_effective_config(cfg, table.path)
            with table.run_lock():
                missing = table.missing(candidates)
                summary = StageSummary(stage=table.stage, fingerprint=table.fingerprint, path=str(table.path),
                                       total=candidates.num_rows, cached=candidates.num_rows - missing.num_rows)
                if missing.num_rows:
                    # Arrow slices, not Python rows: they pickle for Dask and Ray workers, and rows as
                    # dicts cost ~1 KB a frame (bench/bench_scale.py, captions and cues at full size)
                    shards = split_shards(missing, self.shards(cfg))
                    results = map_shards(self, cfg, variant, shards)
                    summary.computed = sum(r.computed for r in results)
                    summary.errors = sum(r.errors for r in results)
                    summary.model_loaded = any(r.loaded for r in results)
            summary.seconds = time.perf_counter() - t0
            if variant is not None:
                summary.extra["variant"] = variant
            summaries.append(summary)
        return summaries
