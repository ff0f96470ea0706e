"""Prefect flow: dense captions for every manifest frame (pipeline.captions_stage)."""
from __future__ import annotations

import pyarrow as pa
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.sharding import run_sharded
from pipeline import worker_cache
from pipeline.captions_stage import caption_batch, captions_table, frame_keys, make_captioner
from pipeline.config import Config, save_effective_config
from pipeline.stage_runner import ShardJob, ShardResult, StageSummary, write_rows


@task(name="caption-shard", retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def caption_shard(cfg: Config, shard: list[dict]) -> ShardResult:
    table = captions_table(cfg)
    job = ShardJob(
        table=table,
        make_worker=lambda: worker_cache.get_worker(f"captions:{table.fingerprint}", lambda: make_captioner(cfg)),
        process=lambda captioner, batch: write_rows(table, caption_batch(cfg, captioner, batch)),
        batch_size=cfg.captions.batch_size,
        progress=cfg.run.progress,
        desc="captions",
    )
    return job.run(pa.Table.from_pylist(shard))


@flow(name="captions", log_prints=True)
def captions_flow(cfg: Config) -> StageSummary:
    table = captions_table(cfg)
    save_effective_config(cfg, table.path)
    summary = run_sharded(caption_shard, cfg, table, frame_keys(cfg), cfg.captions.shards)
    print(summary)
    return summary
