"""The manifest stage: index a dataset folder into the `manifest` cache table, incrementally.

The table's fingerprint covers the reader's settings (root, subset/split/V3 filters, verify mode,
stage version), not the files. Each video carries a signature of its own inputs
(pipeline.data.signatures). A run reads the CSV files, stats the video folders, and verifies
(opens or decodes) only the videos whose (key, signature) is not in the table yet: new videos, and
videos whose files or metadata changed. Unchanged videos keep their rows and no image of theirs is
read, so adding videos costs what the new videos cost, and an unchanged folder reads no image at all.

The table is append-only: rows are keyed by (dataset, subset, split, uid, frame, video_sig), so a
changed video adds rows under its new signature and its old rows stay as history.
`lineage.load_manifest` / `run_manifest(...).rows` return the current state only: the rows whose
(video, signature) the folder holds now; a removed video therefore disappears from them. (A raw
`SELECT * FROM manifest` over the Parquet parts also sees that history.)
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.config import Config, save_effective_config
from pipeline.data.avsbench import ManifestSummary, manifest_table_of, summarize, video_rows
from pipeline.data.signatures import SIG_COLUMN, VIDEO_KEYS, folder_state
from pipeline.stages import lineage
from pipeline.stages.base import Stage, StageSummary
from pipeline.store.cache_table import CacheTable

VIDEOS_PER_PART = 256  # verified videos per written part: a kill loses at most this many


@dataclass
class ManifestRun:
    table: CacheTable
    reused: bool  # nothing was verified or written: every current row was already cached
    summary: ManifestSummary  # counts of the current manifest
    rows: pa.Table  # the current manifest (lineage.MANIFEST_TABLE_SCHEMA + provenance), sorted by (subset, split, uid, frame)
    stage: StageSummary  # per-video: total, cached (unchanged), computed (verified now)

    def describe(self) -> str:
        s = self.stage
        if self.reused:
            head = f"manifest reused: {self.rows.num_rows} rows over {s.total} videos in {self.table.path}"
        else:
            head = (f"manifest updated in {self.table.path}: verified {s.computed} new or changed videos "
                    f"({s.extra['rows_verified']} rows), {s.cached} unchanged videos reused")
        return f"{head}\n{self.summary}"


def run_manifest(cfg: Config) -> ManifestRun:
    """Bring the manifest up to date with the folder, verifying only new or changed videos."""
    t0 = time.perf_counter()
    ds = cfg.dataset
    root = Path(ds.root).expanduser().absolute()
    table = lineage.manifest_table(cfg)
    with table.run_lock():
        save_effective_config(cfg, table.path)
        state = folder_state(root, ds.name, ds.subsets, ds.splits, ds.v3)
        videos, video_sigs, bad = state.videos, state.video_sigs, state.bad

        have = table.read(columns=[*VIDEO_KEYS, SIG_COLUMN]).to_pylist()
        present = {tuple(r[c] for c in (*VIDEO_KEYS, SIG_COLUMN)) for r in have}

        todo = [(e, sig) for e, sig in zip(videos, video_sigs) if (e.meta.subset, e.split, e.meta.uid, sig) not in present]
        new_bad = [r for r in bad if (r["subset"], r["split"], r["uid"], r[SIG_COLUMN]) not in present]
        rows_verified = errors = 0
        for start in range(0, max(len(todo), 1 if new_bad else 0), VIDEOS_PER_PART):
            chunk = todo[start : start + VIDEOS_PER_PART]
            out = new_bad if start == 0 else []
            for (entry, sig), frame_rows in zip(chunk, video_rows(root, ds.name, [e for e, _ in chunk], ds.verify, cfg.run.workers)):
                for r in frame_rows:
                    r[SIG_COLUMN] = sig
                out += frame_rows
                rows_verified += len(frame_rows)
            part = manifest_table_of(out, lineage.MANIFEST_TABLE_SCHEMA)
            errors += int(pc.sum(pc.equal(part["status"], "error")).as_py() or 0)
            table.write(part)
            if cfg.run.progress and todo:
                print(f"manifest: checked {min(start + VIDEOS_PER_PART, len(todo))}/{len(todo)} new or changed videos", flush=True)

        rows = lineage.current_rows(table, state.current())
    summary = summarize(rows, ds.name)
    stage = StageSummary(
        stage="manifest",
        fingerprint=table.fingerprint,
        path=str(table.path),
        total=len(videos),
        cached=len(videos) - len(todo),
        computed=len(todo),
        errors=errors,
        seconds=time.perf_counter() - t0,
        extra={"rows": rows.num_rows, "ok_rows": summary.ok, "error_rows": summary.errors,
               "rows_verified": rows_verified, "bad_lines_new": len(new_bad)},
    )
    return ManifestRun(table, reused=not todo and not new_bad, summary=summary, rows=rows, stage=stage)


STAGE = Stage(name="manifest", reads=(), writes="manifest", run=run_manifest)
