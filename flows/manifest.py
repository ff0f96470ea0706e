"""Prefect flow: index a dataset into the manifest cache table (only new or changed videos are verified)."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from prefect import flow

from pipeline.config import Config
from pipeline.stages import lineage, manifest
from pipeline.stages.base import StageSummary
from pipeline.stages.manifest import ManifestRun


@contextmanager
def indexed(cfg: Config) -> Iterator[ManifestRun | None]:
    """Bring the manifest up to date before the block's stages read it (nothing is verified when
    nothing changed), and pin it for the block, so that they plan from this one reading of the
    folder. Inside an enclosing `indexed` block of the same dataset (a refresh) it does nothing
    and yields None."""
    if lineage.pinned_rows(cfg) is not None:
        yield None
        return
    run = manifest.STAGE.run(cfg)
    with lineage.pinned_manifest(cfg, run.rows):
        yield run


@flow(name="manifest", log_prints=True)
def manifest_flow(cfg: Config) -> StageSummary:
    """Per-video summary: total videos, cached (unchanged), computed (verified now); row counts in `extra`."""
    result = manifest.STAGE.run(cfg)
    print(result.describe())
    return result.stage
