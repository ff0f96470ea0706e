"""The Prefect task shared by the per-frame text stages (captions, cues): one shard of keys,
the stage's model loaded once per process, batches written atomically."""
from __future__ import annotations

import pyarrow as pa
from prefect import task
from prefect.cache_policies import NO_CACHE

from pipeline import worker_cache
from pipeline.captions_stage import caption_batch, captions_table, make_captioner
from pipeline.config import Config
from pipeline.cues_stage import cue_batch, cues_table, make_reasoner
from pipeline.stage_runner import ShardJob, ShardResult, write_rows

# stage -> (its cache table, model builder, batch function, batch size)
STAGES = {
    "captions": (captions_table, make_captioner, caption_batch, lambda cfg: cfg.captions.batch_size),
    "cues": (cues_table, make_reasoner, cue_batch, lambda cfg: cfg.cues.batch_size),
}


@task(name="frame-stage-shard", retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def frame_shard(cfg: Config, shard: list[dict], stage: str) -> ShardResult:
    table_fn, make_worker, batch_fn, batch_size = STAGES[stage]
    table = table_fn(cfg)
    job = ShardJob(
        table=table,
        make_worker=lambda: worker_cache.get_worker(f"{stage}:{table.fingerprint}", lambda: make_worker(cfg)),
        process=lambda worker, batch: write_rows(table, batch_fn(cfg, worker, batch)),
        batch_size=batch_size(cfg),
        progress=cfg.run.progress,
        desc=stage,
    )
    return job.run(pa.Table.from_pylist(shard))
