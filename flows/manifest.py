"""Prefect flow: index a dataset into the manifest cache table (only new or changed videos are verified)."""
from __future__ import annotations

from prefect import flow

from pipeline.config import Config
from pipeline.stages.base import StageSummary
from pipeline.stages import manifest


def index(cfg: Config) -> None:
    """Bring the manifest up to date before a stage reads it (a no-op when nothing changed)."""
    manifest.STAGE.run(cfg)


@flow(name="manifest", log_prints=True)
def manifest_flow(cfg: Config) -> StageSummary:
    """Per-video summary: total videos, cached (unchanged), computed (verified now); row counts in `extra`."""
    result = manifest.STAGE.run(cfg)
    print(result.describe())
    return result.stage
