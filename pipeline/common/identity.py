"""What identifies a model in a cache fingerprint.

A hub id identifies itself. A local folder is identified by the sha256 of its small files
(configs, tokenizer, chat template) plus the name and size of each weight file: hashing many GB
of weights on every run would cost minutes, and re-saved or converted weights change size or
config in practice.
"""
from __future__ import annotations

import functools
import hashlib
from pathlib import Path

_WEIGHT_SUFFIXES = {".safetensors", ".bin", ".pth", ".pt", ".gguf"}
_SMALL_LIMIT = 50 * 1024 * 1024  # larger files are treated as weights: name + size only


def model_identity(model: str) -> dict:
    path = Path(model)
    if not path.exists():
        return {"model": model}
    if path.is_file():
        return {"model": str(path.resolve()), "files": {path.name: _file_id(path)}}
    files = {}
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        files[str(f.relative_to(path))] = _file_id(f)
    return {"model": str(path.resolve()), "files": files}


def _file_id(path: Path) -> str:
    size = path.stat().st_size
    if path.suffix in _WEIGHT_SUFFIXES or size > _SMALL_LIMIT:
        return f"size:{size}"
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's content. Remembered per (path, size, mtime) in this process: a fingerprint
    that names a weights file is computed for every batch and every store it opens, and hashing
    VGGish's 288 MB each time would cost about a second."""
    path = Path(path).resolve()
    st = path.stat()
    return _sha256_of(str(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()
