"""Which foundation model a run loads (`train.model.foundation`), checked before anything runs.

The path is a local folder, or a hub id (`namespace/name`) that `from_pretrained` resolves. When it
is this config's own small random Mask2Former (`foundation.out`, the CPU configs) and not built
yet, training builds it; anything else that is neither a folder nor a plausible hub id is a config
error naming the command that makes it, instead of a hub traceback mid-run.
"""
from __future__ import annotations

import re
from pathlib import Path

from model.config import GAVSConfig, SmallFoundationConfig, SmallSamConfig, TeSOConfig
from model.foundation import build_small_foundation
from pipeline.config import Config, ConfigError

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


def foundation_path(cfg: Config) -> str:
    default = GAVSConfig.foundation if cfg.train.model.get("architecture") == "gavs" else TeSOConfig.foundation
    return str(cfg.train.model.get("foundation", default))


def own_small_foundation(cfg: Config) -> SmallFoundationConfig | SmallSamConfig | None:
    """The recipe of this config's own small random foundation when the run loads it (the small
    Mask2Former at `foundation.out`, or the small SAM at `foundation.sam_out`), else None."""
    path = Path(foundation_path(cfg)).resolve()
    if path == Path(cfg.foundation.out).resolve():
        return SmallFoundationConfig(**cfg.foundation.small)
    if path == Path(cfg.foundation.sam_out).resolve():
        return SmallSamConfig(**cfg.foundation.sam_small)
    return None


def is_own_small_foundation(cfg: Config) -> bool:
    return own_small_foundation(cfg) is not None


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
    recipe = own_small_foundation(cfg) if build else None
    if recipe is not None:
        build_small_foundation(foundation_path(cfg), recipe)
    return check_foundation(cfg)
