"""Prefect flow: audio features for every audio condition, then text-cue embeddings (pipeline.stages.features)."""
from __future__ import annotations

from prefect import flow

from flows.manifest import indexed
from flows.sharding import run_stage
from pipeline.config import Config
from pipeline.stages import features
from pipeline.stages.base import StageSummary


@flow(name="features", log_prints=True)
def features_flow(cfg: Config) -> list[StageSummary]:
    """One summary per audio condition (`extra["variant"]` names it), then one for the text cues."""
    with indexed(cfg):
        summaries = run_stage(features.AUDIO, cfg)
        for summary in summaries:
            print(f"audio {summary.extra['variant']}: {summary}")
        [text] = run_stage(features.TEXT, cfg)
    print(f"text: {text}")
    return summaries + [text]
