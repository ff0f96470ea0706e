"""Where the shards of a stage run: Prefect tasks on a thread, Dask or Ray task runner."""
from __future__ import annotations

import pyarrow as pa
from prefect import task, unmapped
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from pipeline.config import Config, ConfigError
from pipeline.stages import captions, cues, features
from pipeline.stages.base import ShardedStage, ShardResult, StageSummary


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


# Every sharded stage by name: a shard task receives the name (plain data between processes).
SHARDED = {stage.name: stage for stage in (captions.STAGE, cues.STAGE, features.AUDIO, features.TEXT)}


@task(name="stage-shard", retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def shard_task(cfg: Config, shard: pa.Table, stage: str, variant: str | None) -> ShardResult:
    """One shard of one stage: its model loaded once per process, its batches written atomically."""
    return SHARDED[stage].run_shard(cfg, shard, variant)


def _map_as_tasks(stage: ShardedStage, cfg: Config, variant: str | None, shards: list[pa.Table]) -> list[ShardResult]:
    futures = shard_task.map(unmapped(cfg), shards, unmapped(stage.name), unmapped(variant))
    return [f.result() for f in futures]


def run_stage(stage: ShardedStage, cfg: Config) -> list[StageSummary]:
    """Run a sharded stage inside the calling flow, one Prefect task per shard on its task runner."""
    return stage.run(cfg, _map_as_tasks)
