"""Fan a stage's missing keys out over Prefect tasks, one task per shard, and sum the results."""
from __future__ import annotations

import time

import pyarrow as pa
from prefect import unmapped
from prefect.task_runners import ThreadPoolTaskRunner

from pipeline.cache_store import CacheTable
from pipeline.config import Config, ConfigError
from pipeline.stage_runner import ShardResult, StageSummary, split_shards


CLUSTER_HINT = 'install the cluster extra: .venv/bin/pip install -e ".[cluster]"'


class TaskRunnerUnavailable(ConfigError):
    """The configured task runner's package is not installed (the CLI prints it as a config problem)."""


def task_runner(cfg: Config):
    """A fresh task runner for one flow run, as `run.task_runner` says: threads (default), Dask
    (`prefect-dask`; `run.dask_address` or a local cluster of `run.workers` workers) or Ray
    (`prefect-ray`; `run.ray_address` or a local Ray instance). The cluster packages are imported
    only here, when chosen."""
    run = cfg.run
    if run.task_runner == "thread":
        return ThreadPoolTaskRunner(max_workers=run.workers)
    from flows import cluster_runners

    if run.task_runner == "dask":
        try:
            return cluster_runners.dask_task_runner(run.dask_address, run.workers, run.dask_processes)
        except ImportError as exc:
            raise TaskRunnerUnavailable(f"run.task_runner=dask needs prefect-dask ({exc}); {CLUSTER_HINT}") from exc
    if run.task_runner == "ray":
        try:
            return cluster_runners.ray_task_runner(run.ray_address, run.workers)
        except ImportError as exc:
            raise TaskRunnerUnavailable(f"run.task_runner=ray needs prefect-ray ({exc}); {CLUSTER_HINT}") from exc
    raise ValueError(f"unknown run.task_runner {run.task_runner!r}")


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
