"""Atomic writes of files and folders: temporary name in the same folder, fsync, rename, fsync the
parent folder.

A reader (or a crash) therefore sees either the old file or folder or the complete new one, never a
partial write. Temporary names start with a dot so the caches' `part-*.parquet` globs skip them,
and carry the writing process's id: a process killed mid-write (SIGKILL runs no cleanup) leaves its
temporary behind, and `sweep_temporaries` removes those whose process is gone, never one a live
writer is still filling (on one machine; PIDs say nothing across hosts of a shared file system).
The one copy of this logic: caches, feature shards, checkpoints, the foundation, the synthetic dataset.
"""
from __future__ import annotations

import os
import re
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


_TEMPORARY = re.compile(r"\..+\.(\d+)-[0-9a-f]{8}\.(tmp|old)")


def _tmp_name(final: Path) -> str:
    return f".{final.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def sweep_temporaries(folder: Path) -> list[Path]:
    """Remove the temporary files and folders directly in `folder` that a killed process left
    (their writer's PID is not running); returns what was removed."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        m = _TEMPORARY.fullmatch(entry.name)
        if m and int(m.group(1)) != os.getpid() and not pid_alive(int(m.group(1))):
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it is renamed to `final`, on error removed."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / _tmp_name(final)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        _fsync_dir(final.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(final: Path, text: str) -> Path:
    with atomic_path(final) as tmp:
        tmp.write_text(text)
    return Path(final)


def atomic_write_bytes(final: Path, data: bytes) -> Path:
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)
    return Path(final)


def replace_folder(tmp: Path, final: Path) -> None:
    """Swap the finished folder `tmp` in for `final`. An existing `final` is renamed aside first and
    removed after, so the path always holds either the old folder or the new one."""
    tmp, final = Path(tmp), Path(final)
    old = None
    if final.exists():
        old = final.parent / f".{final.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.old"
        os.replace(final, old)
    os.replace(tmp, final)
    _fsync_dir(final.parent)
    if old is not None:
        shutil.rmtree(old)


@contextmanager
def atomic_folder(final: Path) -> Iterator[Path]:
    """Yield a temporary folder to fill; on success its files are synced to disk and it replaces
    `final` (replace_folder), on error it is removed."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / _tmp_name(final)
    tmp.mkdir()
    try:
        yield tmp
        for file in tmp.rglob("*"):
            if file.is_file():
                with open(file, "rb") as fh:
                    os.fsync(fh.fileno())
        replace_folder(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
