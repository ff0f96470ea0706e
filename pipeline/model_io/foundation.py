"""Which foundation model a run loads (`train.model.foundation`), checked before anything runs.

The path is a local folder, or a hub id (`namespace/name`) that `from_pretrained` resolves. When it
is this config's own small random Mask2Former (`foundation.out`, the CPU configs) and not built
yet, training builds it; anything else that is neither a folder nor a plausible hub id is a config
error naming the command that makes it, instead of a hub traceback mid-run.
"""
from __future__ import annotations

import re
from pathlib import Path

from model.config import SmallFoundationConfig, TeSOConfig
from model.foundation import build_small_foundation
from pipeline.config import Config, ConfigError

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


def foundation_path(cfg: Config) -> str:
    return str(cfg.train.model.get("foundation", TeSOConfig.foundation))


def is_own_small_foundation(cfg: Config) -> bool:
    return Path(foundation_path(cfg)).resolve() == Path(cfg.foundation.out).resolve()


def check_foundation(cfg: Config) -> str:
    """The foundation, when it is a folder or a hub id; a ConfigError otherwise."""
    path = foundation_path(cfg)
    if Path(path).is_dir():
        return path
    parent = Path(path).parent
    local = path.startswith((".", "/", "~")) or (str(parent) != "." and parent.exists())
    if HUB_ID.match(path) and not local:
        return path
    how = (f"`teso foundation --config CONFIG` builds it there (or `make foundation`)" if is_own_small_foundation(cfg)
           else "point it at a model folder, or at a hub id like facebook/mask2former-swin-base-ade-semantic")
    raise ConfigError(f"train.model.foundation={path!r} is neither a folder nor a hub id; {how}")


def ensure_foundation(cfg: Config, build: bool = True) -> str:
    """check_foundation, (re)building this config's own small random foundation first when it is
    missing or was built from other `foundation.small` settings (a no-op otherwise)."""
    if build and is_own_small_foundation(cfg):
        build_small_foundation(cfg.foundation.out, SmallFoundationConfig(**cfg.foundation.small))
    return check_foundation(cfg)
