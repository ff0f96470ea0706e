"""The manifest stage: index a dataset folder into the `manifest` cache table.

The fingerprint covers the reader's settings and a signature of every file under the dataset
root (relative path, size, mtime), so adding videos, replacing a corrupt frame or editing
metadata.csv re-indexes, and an unchanged folder is reused without reading a single image.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from pipeline.avsbench import MANIFEST_SCHEMA, ManifestSummary, build_manifest
from pipeline.cache_store import CacheTable
from pipeline.config import Config, save_effective_config

STAGE = "manifest"
STAGE_VERSION = 1  # bump when the reader's output for the same files changes


def tree_signature(root: Path) -> str:
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            st = path.stat()
            digest.update(f"{path.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def manifest_table(cfg: Config) -> CacheTable:
    ds = cfg.dataset
    root = ds.root.resolve()
    inputs = {
        "stage_version": STAGE_VERSION,
        "root": str(root),
        "tree": tree_signature(root),
        "subsets": ds.subsets,
        "splits": ds.splits,
        "v3": ds.v3,
        "verify": ds.verify,
    }
    return CacheTable(
        cfg.cache.root,
        ds.name,
        STAGE,
        inputs,
        MANIFEST_SCHEMA,
        key_columns=("dataset", "subset", "split", "uid", "frame"),
        lock_timeout_s=cfg.cache.lock_timeout_s,
    )


@dataclass
class ManifestRun:
    table: CacheTable
    reused: bool
    summary: ManifestSummary | None

    def describe(self) -> str:
        if self.reused:
            return f"manifest reused: {len(self.table)} rows in {self.table.path}"
        return f"manifest written to {self.table.path}\n{self.summary}"


def run_manifest(cfg: Config) -> ManifestRun:
    """Index the dataset unless this exact folder state is already indexed."""
    table = manifest_table(cfg)
    with table.run_lock():
        save_effective_config(cfg, table.path)
        if table.parts():
            return ManifestRun(table, reused=True, summary=None)
        rows, summary = build_manifest(
            cfg.dataset.root,
            cfg.dataset.name,
            subsets=cfg.dataset.subsets,
            splits=cfg.dataset.splits,
            v3=cfg.dataset.v3,
            verify=cfg.dataset.verify,
            workers=cfg.run.workers,
            progress=cfg.run.progress,
        )
        table.write(rows)  # one part: the manifest appears whole or not at all
    return ManifestRun(table, reused=False, summary=summary)


def load_manifest(cfg: Config, ok_only: bool = True):
    """The current manifest as an Arrow table (indexing first if needed)."""
    import pyarrow.compute as pc

    rows = run_manifest(cfg).table.read()
    if ok_only:
        rows = rows.filter(pc.equal(rows["status"], "ok"))
    return rows
