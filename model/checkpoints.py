"""Training checkpoints: what the recipe (model/train.py) persists, and how a run resumes from it.

Only rank 0 writes; every folder and pointer is written atomically (pipeline.common.atomic), so a
crash leaves either the previous checkpoint or the complete new one.

    out_dir/checkpoints/last              name of the newest complete checkpoint folder
    out_dir/checkpoints/epoch-{k}/        after k epochs: model.safetensors (trainable weights only),
                                          optimizer.pt (AdamW + GradScaler), rng.pt (every rank's
                                          python/numpy/torch/cuda RNG states), state.json
    out_dir/best/                         model.safetensors + state.json of the best validated epoch

load_checkpoint restores the weights, the optimizer and the scaler, refuses a checkpoint trained
with another TeSOConfig, and hands back the counters and the RNG states for the recipe to apply.
"""
from __future__ import annotations

import json
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from model.config import ADDED_SETTINGS, TeSOConfig, TrainConfig
from model.segmenter import TeSOSegmenter
from pipeline.common.atomic import atomic_folder, atomic_write_text


def checkpoint_dir(out_dir: str | Path) -> Path:
    return Path(out_dir) / "checkpoints"


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    """The folder the `last` pointer names, or None when no checkpoint was completed."""
    pointer = checkpoint_dir(out_dir) / "last"
    if not pointer.exists():
        return None
    folder = pointer.parent / pointer.read_text().strip()
    if not (folder / "state.json").exists():
        raise ValueError(f"{pointer} names {folder.name}, which is missing or incomplete")
    return folder


def forget_latest(out_dir: str | Path) -> None:
    """Drop the `last` pointer, so a later resume cannot mix a fresh run with an older one's checkpoints."""
    (checkpoint_dir(out_dir) / "last").unlink(missing_ok=True)


# --- RNG states (one dict per process; rng.pt holds every rank's) ---


def rng_state() -> dict[str, Any]:
    """This process's RNG states in types `torch.load(weights_only=True)` accepts."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --- writing ---


def _save_weights(model: TeSOSegmenter, path: Path) -> None:
    save_file({k: v.detach().cpu().contiguous() for k, v in model.trainable_state_dict().items()}, str(path))


def save_checkpoint(
    out_dir: Path,
    epoch: int,
    model: TeSOSegmenter,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    rng_states: list[dict[str, Any]],
    model_cfg: TeSOConfig,
    cfg: TrainConfig,
    global_step: int,
    best_metric: float | None,
    best_epoch: int | None,
    select_metric: str,
) -> None:
    """Write checkpoints/epoch-{epoch}/, point `last` at it, and prune to cfg.keep_checkpoints folders."""
    ckpt_dir = checkpoint_dir(out_dir)
    state = {
        "epoch": epoch,
        "global_step": global_step,
        "best_metric": best_metric,
        "best_epoch": best_epoch,
        "select_metric": select_metric,
        "world_size": len(rng_states),
        "model_config": model_cfg.to_dict(),
        "train_config": asdict(cfg),
    }
    with atomic_folder(ckpt_dir / f"epoch-{epoch}") as folder:
        _save_weights(model, folder / "model.safetensors")
        torch.save({"optimizer": optimizer.state_dict(), "scaler": scaler.state_dict()}, folder / "optimizer.pt")
        torch.save(rng_states, folder / "rng.pt")
        (folder / "state.json").write_text(json.dumps(state, indent=2))
    atomic_write_text(ckpt_dir / "last", f"epoch-{epoch}\n")
    if cfg.keep_checkpoints:
        done = sorted(
            (p for p in ckpt_dir.glob("epoch-*") if p.is_dir() and p.name[6:].isdigit()),
            key=lambda p: int(p.name[6:]),
        )
        for old in done[: -cfg.keep_checkpoints]:
            shutil.rmtree(old)


def save_best(model: TeSOSegmenter, out_dir: Path, epoch: int, metrics: dict[str, float], select_metric: str) -> None:
    """Replace out_dir/best/ with this epoch's trainable weights and metrics."""
    with atomic_folder(out_dir / "best") as folder:
        _save_weights(model, folder / "model.safetensors")
        info = {"epoch": epoch, "select_metric": select_metric, "metrics": metrics}
        (folder / "state.json").write_text(json.dumps(info, indent=2))


# --- reading ---


@dataclass
class Restored:
    """What load_checkpoint hands back to the recipe besides the state it loaded in place."""

    epoch: int  # epochs done
    global_step: int
    best_metric: float | None
    best_epoch: int | None
    rng_states: list[dict[str, Any]]  # one per rank of the run that wrote the checkpoint


def _config_mismatch(saved: dict[str, Any], model_cfg: TeSOConfig) -> list[str]:
    """Settings that differ from the checkpoint's. A setting added since the checkpoint was written
    matches when it has the value that reproduces the code of then (ADDED_SETTINGS), or when it has
    no effect on this model."""
    current = model_cfg.to_dict()
    inert = set() if model_cfg.freeze_foundation else {"frozen_foundation_mode"}

    def same(k: str, v: Any) -> bool:
        if k not in saved:
            return k in inert or (k in ADDED_SETTINGS and ADDED_SETTINGS[k] == v)
        return saved[k] == v

    return [f"{k}: checkpoint {saved.get(k)!r}, now {v!r}" for k, v in current.items() if not same(k, v)]


def load_checkpoint(
    folder: Path,
    model_cfg: TeSOConfig,
    model: TeSOSegmenter,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    device: torch.device,
) -> Restored:
    """Load the weights, the optimizer and the scaler of `folder` in place; refuse another TeSOConfig."""
    state = json.loads((folder / "state.json").read_text())
    mismatch = _config_mismatch(state["model_config"], model_cfg)
    if mismatch:
        raise ValueError(f"{folder} was trained with another TeSOConfig: " + "; ".join(mismatch))
    model.load_trainable_state_dict(load_file(str(folder / "model.safetensors"), device=str(device)))
    opt_state = torch.load(folder / "optimizer.pt", map_location=device, weights_only=True)
    optimizer.load_state_dict(opt_state["optimizer"])
    scaler.load_state_dict(opt_state["scaler"])
    rng_states = torch.load(folder / "rng.pt", weights_only=True)
    return Restored(state["epoch"], state["global_step"], state["best_metric"], state["best_epoch"], rng_states)
