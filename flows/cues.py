"""Prefect flow: sounding-object cues for every captioned frame (pipeline.stages.cues)."""
from __future__ import annotations

from prefect import flow

from flows.sharding import run_stage
from pipeline.config import Config
from pipeline.stages import cues
from pipeline.stages.base import StageSummary


@flow(name="cues", log_prints=True)
def cues_flow(cfg: Config) -> StageSummary:
    [summary] = run_stage(cues.STAGE, cfg)
    print(summary)
    return summary
