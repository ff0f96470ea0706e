"""Prefect flow: dense captions for every manifest frame (pipeline.captions_stage)."""
from __future__ import annotations

from prefect import flow

from flows.frame_stages import frame_shard
from flows.sharding import run_sharded
from pipeline.captions_stage import captions_table, frame_keys
from pipeline.config import Config, save_effective_config
from pipeline.stage_runner import StageSummary


@flow(name="captions", log_prints=True)
def captions_flow(cfg: Config) -> StageSummary:
    table = captions_table(cfg)
    save_effective_config(cfg, table.path)
    summary = run_sharded(frame_shard, cfg, table, frame_keys(cfg), cfg.captions.shards, "captions")
    print(summary)
    return summary
