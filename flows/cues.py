"""Prefect flow: sounding-object cues for every captioned frame (pipeline.cues_stage)."""
from __future__ import annotations

import pyarrow as pa
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.sharding import run_sharded
from pipeline import worker_cache
from pipeline.config import Config, save_effective_config
from pipeline.cues_stage import caption_rows, cue_batch, cues_table, make_reasoner
from pipeline.stage_runner import ShardJob, ShardResult, StageSummary, write_rows


@task(name="cue-shard", retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def cue_shard(cfg: Config, shard: list[dict]) -> ShardResult:
    table = cues_table(cfg)
    job = ShardJob(
        table=table,
        make_worker=lambda: worker_cache.get_worker(f"cues:{table.fingerprint}", lambda: make_reasoner(cfg)),
        process=lambda reasoner, batch: write_rows(table, cue_batch(cfg, reasoner, batch)),
        batch_size=cfg.cues.batch_size,
        progress=cfg.run.progress,
        desc="cues",
    )
    return job.run(pa.Table.from_pylist(shard))


@flow(name="cues", log_prints=True)
def cues_flow(cfg: Config) -> StageSummary:
    table = cues_table(cfg)
    save_effective_config(cfg, table.path)
    summary = run_sharded(cue_shard, cfg, table, caption_rows(cfg), cfg.cues.shards)
    print(summary)
    return summary
