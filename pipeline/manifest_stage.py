"""The manifest stage: index a dataset folder into the `manifest` cache table, incrementally.

The table's fingerprint covers the reader's settings (root, subset/split/V3 filters, verify mode,
stage version), not the files. Each video carries a signature of its own inputs: its metadata row
(uid, vid, label, split, a_obj, its V3 role) and the relative path, size and mtime of every file
under its folder. A run reads the CSV files, stats the video folders, and verifies (opens or
decodes) only the videos whose (key, signature) is not in the table yet: new videos, and videos
whose files or metadata changed. Unchanged videos keep their rows and no image of theirs is read,
so adding videos costs what the new videos cost, and an unchanged folder reads no image at all.

The table is append-only (DESIGN section 6): rows are keyed by (dataset, subset, split, uid,
frame, video_sig), so a changed video adds rows under its new signature and its old rows stay as
history. `load_manifest` / `run_manifest(...).rows` return the current state only: the rows whose
(video, signature) the folder holds now; a removed video therefore disappears from them. (A raw
`SELECT * FROM manifest` over the Parquet parts also sees that history; filter on the current
signatures, or use `load_manifest`, for the current state.)
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.avsbench import (
    MANIFEST_SCHEMA,
    Entry,
    ManifestSummary,
    bad_rows,
    manifest_entries,
    manifest_table_of,
    summarize,
    video_rows,
)
from pipeline.cache_store import CacheTable
from pipeline.config import Config, save_effective_config
from pipeline.stage_runner import StageSummary

STAGE = "manifest"
STAGE_VERSION = 2  # bump when the reader's output for the same files changes (2: per-video signatures)
VIDEO_KEYS = ("subset", "split", "uid")
SIG_COLUMN = "video_sig"
STAGE_SCHEMA = pa.schema(list(MANIFEST_SCHEMA) + [pa.field(SIG_COLUMN, pa.string())])
VIDEOS_PER_PART = 256  # verified videos per written part: a kill loses at most this many


def video_signature(root: Path, entry: Entry) -> str:
    """Hash of what one video's rows depend on: its metadata fields and role, and the relative path,
    size and mtime of every file under `ROOT/{label}/{uid}/` (a missing folder hashes as empty)."""
    m = entry.meta
    digest = hashlib.sha256(json.dumps([entry.split, m.uid, m.vid, m.subset, m.split, m.a_obj]).encode())
    vdir = root / m.subset / m.uid
    for dirpath, dirnames, filenames in os.walk(vdir):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            try:
                st = path.stat()
                stamp = f"{st.st_size}\0{st.st_mtime_ns}"
            except OSError as exc:  # vanished or a dangling link: its state is still part of the signature
                stamp = f"unreadable {type(exc).__name__}"
            digest.update(f"{path.relative_to(vdir)}\0{stamp}\n".encode())
    return digest.hexdigest()[:16]


def _row_signature(row: dict) -> str:
    """Signature of a bad-line row: its own content (it is computed from the CSV files alone)."""
    return hashlib.sha256(json.dumps(row, sort_keys=True, default=str).encode()).hexdigest()[:16]


def manifest_table(cfg: Config) -> CacheTable:
    ds = cfg.dataset
    inputs = {
        "stage_version": STAGE_VERSION,
        "root": str(ds.root.resolve()),
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
        STAGE_SCHEMA,
        key_columns=("dataset", "subset", "split", "uid", "frame", SIG_COLUMN),
        lock_timeout_s=cfg.cache.lock_timeout_s,
    )


@dataclass
class ManifestRun:
    table: CacheTable
    reused: bool  # nothing was verified or written: every current row was already cached
    summary: ManifestSummary  # counts of the current manifest
    rows: pa.Table  # the current manifest (STAGE_SCHEMA + provenance), sorted by (subset, split, uid, frame)
    stage: StageSummary  # per-video: total, cached (unchanged), computed (verified now)

    def describe(self) -> str:
        s = self.stage
        if self.reused:
            head = f"manifest reused: {self.rows.num_rows} rows over {s.total} videos in {self.table.path}"
        else:
            head = (f"manifest updated in {self.table.path}: verified {s.computed} new or changed videos "
                    f"({s.extra['rows_verified']} rows), {s.cached} unchanged videos reused")
        return f"{head}\n{self.summary}"


def _current_rows(table: CacheTable, current: pa.Table) -> pa.Table:
    """Stored rows whose (video keys, signature) are in `current`, in manifest order."""
    stored = table.read()
    keys = [*VIDEO_KEYS, SIG_COLUMN]
    if stored.num_rows == 0 or current.num_rows == 0:
        return stored.slice(0, 0)
    rows = stored.join(current.cast(stored.select(keys).schema), keys=keys, join_type="inner")
    rows = rows.select(table.schema.names)
    return rows.sort_by([(c, "ascending") for c in ("subset", "split", "uid", "frame")])


def run_manifest(cfg: Config) -> ManifestRun:
    """Bring the manifest up to date with the folder, verifying only new or changed videos."""
    t0 = time.perf_counter()
    ds = cfg.dataset
    root = Path(ds.root).expanduser().absolute()
    table = manifest_table(cfg)
    with table.run_lock():
        save_effective_config(cfg, table.path)
        entries = manifest_entries(root, ds.subsets, ds.splits, ds.v3)
        videos = [e for e in entries if e.meta]
        video_sigs = [video_signature(root, e) for e in videos]
        bad = bad_rows(ds.name, entries)
        for row in bad:
            row[SIG_COLUMN] = _row_signature(row)

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
            part = manifest_table_of(out, STAGE_SCHEMA)
            errors += int(pc.sum(pc.equal(part["status"], "error")).as_py() or 0)
            table.write(part)
            if cfg.run.progress and todo:
                print(f"manifest: checked {min(start + VIDEOS_PER_PART, len(todo))}/{len(todo)} new or changed videos", flush=True)

        current = pa.table({
            "subset": [e.meta.subset for e in videos] + [r["subset"] for r in bad],
            "split": [e.split for e in videos] + [r["split"] for r in bad],
            "uid": [e.meta.uid for e in videos] + [r["uid"] for r in bad],
            SIG_COLUMN: video_sigs + [r[SIG_COLUMN] for r in bad],
        })
        rows = _current_rows(table, current)
    summary = summarize(rows, ds.name)
    stage = StageSummary(
        stage=STAGE,
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


def load_manifest(cfg: Config, ok_only: bool = True) -> pa.Table:
    """The current manifest as an Arrow table (indexing new or changed videos first)."""
    rows = run_manifest(cfg).rows
    if ok_only:
        rows = rows.filter(pc.equal(rows["status"], "ok"))
    return rows
