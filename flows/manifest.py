"""Prefect flow: index a dataset into the manifest cache table."""
from __future__ import annotations

from prefect import flow

from pipeline.config import Config
from pipeline.manifest_stage import run_manifest


@flow(name="manifest", log_prints=True)
def manifest_flow(cfg: Config) -> str:
    result = run_manifest(cfg)
    print(result.describe())
    return str(result.table.path)
