"""Prefect flow: sounding-object cues for every captioned frame (pipeline.cues_stage)."""
from __future__ import annotations

from prefect import flow

from flows.frame_stages import frame_shard
from flows.sharding import run_sharded
from pipeline.config import Config, save_effective_config
from pipeline.cues_stage import caption_rows, cues_table
from pipeline.stage_runner import StageSummary


@flow(name="cues", log_prints=True)
def cues_flow(cfg: Config) -> StageSummary:
    table = cues_table(cfg)
    save_effective_config(cfg, table.path)
    summary = run_sharded(frame_shard, cfg, table, caption_rows(cfg), cfg.cues.shards, "cues")
    print(summary)
    return summary
