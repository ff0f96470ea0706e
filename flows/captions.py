"""Prefect flow: dense captions for every manifest frame (pipeline.stages.captions)."""
from __future__ import annotations

from prefect import flow

from flows.manifest import indexed
from flows.sharding import run_stage
from pipeline.config import Config
from pipeline.stages import captions
from pipeline.stages.base import StageSummary


@flow(name="captions", log_prints=True)
def captions_flow(cfg: Config) -> StageSummary:
    with indexed(cfg):
        [summary] = run_stage(captions.STAGE, cfg)
    print(summary)
    return summary
