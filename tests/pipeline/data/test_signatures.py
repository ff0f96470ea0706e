"""A video's signature (pipeline/data/signatures.py): what it covers, and its exact value."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from pipeline.data.avsbench import VideoMeta, _Entry
from pipeline.data.signatures import video_signature


def _video(root: Path) -> _Entry:
    vdir = root / "v1s" / "abc_1"
    (vdir / "frames").mkdir(parents=True)
    for i, rel in enumerate(["audio.wav", "frames/0.jpg", "frames/1.jpg"]):
        (vdir / rel).write_bytes(b"x" * (i + 1))
        os.utime(vdir / rel, ns=(1_700_000_000_000_000_000 + i, 1_700_000_000_000_000_000 + i))
    meta = VideoMeta(uid="abc_1", vid="abc", subset="v1s", split="train", a_obj="dog", where="metadata.csv line 2", line=2)
    return _Entry(split="train", meta=meta)


def _by_the_docstring(root: Path, entry: _Entry) -> str:
    """The documented formula, written with pathlib as the first implementation was."""
    m = entry.meta
    digest = hashlib.sha256(json.dumps([entry.split, m.uid, m.vid, m.subset, m.split, m.a_obj]).encode())
    vdir = root / m.subset / m.uid
    for dirpath, dirnames, filenames in os.walk(vdir):
        dirnames.sort()
        for name in sorted(filenames):
            st = (Path(dirpath) / name).stat()
            digest.update(f"{(Path(dirpath) / name).relative_to(vdir)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def test_the_signature_is_the_documented_hash_so_indexed_caches_stay_valid(tmp_path):
    entry = _video(tmp_path)
    assert video_signature(tmp_path, entry) == _by_the_docstring(tmp_path, entry)


def test_the_signature_changes_with_a_file_s_size_or_mtime_and_with_a_new_file(tmp_path):
    entry = _video(tmp_path)
    vdir = tmp_path / "v1s" / "abc_1"
    first = video_signature(tmp_path, entry)
    os.utime(vdir / "frames" / "1.jpg", ns=(1, 1))
    touched = video_signature(tmp_path, entry)
    (vdir / "frames" / "2.jpg").write_bytes(b"new")
    added = video_signature(tmp_path, entry)
    assert len({first, touched, added}) == 3
    assert video_signature(tmp_path / "elsewhere", entry) != first  # a missing folder hashes as empty
