"""What a dataset folder holds now, cheaply: the videos its CSV files list, each with a signature
of its inputs, read from the CSV files and a stat of every video folder (no image is opened).

A video's signature hashes its metadata row (uid, vid, label, split, a_obj, its V3 role) and the
relative path, size and mtime of every file under its folder. The manifest stage verifies only the
videos whose (key, signature) it has not indexed yet; reading the manifest selects the stored rows
of the signatures the folder holds now.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pyarrow as pa

from pipeline.common.errors import UserError
from pipeline.data.avsbench import Entry, bad_rows, manifest_entries

SIG_COLUMN = "video_sig"


class ManifestStale(UserError, RuntimeError):
    """The dataset folder holds videos the manifest has not indexed (new or changed since)."""

VIDEO_KEYS = ("subset", "split", "uid")


def video_signature(root: Path, entry: Entry) -> str:
    """Hash of what one video's rows depend on: its metadata fields and role, and the relative path,
    size and mtime of every file under `ROOT/{label}/{uid}/` (a missing folder hashes as empty).

    Every run signs every video (86,780 frames at AVSBench size), so paths stay strings: pathlib's
    parsing cost 4x the stat calls themselves (bench/bench_scale.py, profiled)."""
    m = entry.meta
    digest = hashlib.sha256(json.dumps([entry.split, m.uid, m.vid, m.subset, m.split, m.a_obj]).encode())
    vdir = os.path.join(root, m.subset, m.uid)
    for dirpath, dirnames, filenames in os.walk(vdir):
        dirnames.sort()
        rel_dir = dirpath[len(vdir) + 1:]
        for name in sorted(filenames):
            try:
                st = os.stat(os.path.join(dirpath, name))
                stamp = f"{st.st_size}\0{st.st_mtime_ns}"
            except OSError as exc:  # vanished or a dangling link: its state is still part of the signature
                stamp = f"unreadable {type(exc).__name__}"
            rel = f"{rel_dir}/{name}" if rel_dir else name
            digest.update(f"{rel}\0{stamp}\n".encode())
    return digest.hexdigest()[:16]


def row_signature(row: dict) -> str:
    """Signature of a bad-line row: its own content (it is computed from the CSV files alone)."""
    return hashlib.sha256(json.dumps(row, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class FolderState:
    videos: list[Entry]  # the videos to index, in manifest order
    video_sigs: list[str]  # their signatures
    bad: list[dict]  # one error row per bad CSV line, each with its signature in SIG_COLUMN

    def current(self) -> pa.Table:
        """(subset, split, uid, video_sig) of every video and bad line the folder holds now."""
        return pa.table({
            "subset": [e.meta.subset for e in self.videos] + [r["subset"] for r in self.bad],
            "split": [e.split for e in self.videos] + [r["split"] for r in self.bad],
            "uid": [e.meta.uid for e in self.videos] + [r["uid"] for r in self.bad],
            SIG_COLUMN: self.video_sigs + [r[SIG_COLUMN] for r in self.bad],
        })


def folder_state(root: Path, dataset: str, subsets: Sequence[str] | None, splits: Sequence[str] | None, v3: str | None) -> FolderState:
    root = Path(root).expanduser().absolute()
    entries = manifest_entries(root, subsets, splits, v3)
    videos = [e for e in entries if e.meta]
    bad = bad_rows(dataset, entries)
    for row in bad:
        row[SIG_COLUMN] = row_signature(row)
    return FolderState(videos, [video_signature(root, e) for e in videos], bad)
