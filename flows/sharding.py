"""Fan a stage's missing keys out over Prefect tasks, one task per shard, and sum the results."""
from __future__ import annotations

import time

import pyarrow as pa
from prefect import unmapped
from prefect.task_runners import ThreadPoolTaskRunner

from pipeline.cache_store import CacheTable
from pipeline.config import Config
from pipeline.stage_runner import ShardResult, StageSummary, split_shards


def task_runner(cfg: Config):
    return ThreadPoolTaskRunner(max_workers=cfg.run.workers)


def run_sharded(shard_task, cfg: Config, table: CacheTable, candidates: pa.Table, n_shards: int, *extra) -> StageSummary:
    """Plan (what is missing), run `shard_task(cfg, shard, *extra)` per shard, summarize. Holds the stage's run lock throughout,
    so a second run of the same stage waits and then finds nothing left to do."""
    t0 = time.perf_counter()
    with table.run_lock():
        missing = table.missing(candidates)
        summary = StageSummary(
            stage=table.stage,
            fingerprint=table.fingerprint,
            path=str(table.path),
            total=candidates.num_rows,
            cached=candidates.num_rows - missing.num_rows,
        )
        if missing.num_rows:
            shards = [s.to_pylist() for s in split_shards(missing, n_shards)]
            futures = shard_task.map(unmapped(cfg), shards, *[unmapped(e) for e in extra])
            results: list[ShardResult] = [f.result() for f in futures]
            summary.computed = sum(r.computed for r in results)
            summary.errors = sum(r.errors for r in results)
            summary.model_loaded = any(r.loaded for r in results)
    summary.seconds = time.perf_counter() - t0
    return summary
