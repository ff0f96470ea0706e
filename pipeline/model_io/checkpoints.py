"""The config's train section -> the model's and the recipe's settings, and trained checkpoints -> models."""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from model.checkpoints import latest_checkpoint
from model.config import GAVSConfig, TeSOConfig, TrainConfig, model_settings
from model.registry import build_model
from pipeline.common.errors import MissingInput
from pipeline.config import Config
from pipeline.stages.lineage import Stores


def text_dim(stores: Stores) -> int:
    keys = stores.text.keys()
    if not keys:
        raise MissingInput(f"no text features in {stores.text.path}; run `teso features` first")
    return int(stores.text.get(keys[0]).shape[-1])


def model_config(cfg: Config, stores: Stores) -> TeSOConfig | GAVSConfig:
    """train.model's settings (model/config.py model_settings); TeSO's text_dim is taken from the
    cached text features when omitted (GAVS reads no text)."""
    values = dict(cfg.train.model)
    if values.get("architecture", "teso") == "teso":
        values.setdefault("text_dim", text_dim(stores))
    return model_settings(values)


def recipe_config(cfg: Config) -> TrainConfig:
    values = {"image_size": cfg.train.image_size, "out_dir": str(cfg.train.out_dir), "progress": cfg.run.progress} | dict(cfg.train.recipe)
    return TrainConfig(**values)


def load_trained(cfg: Config, stores: Stores, which: str = "best") -> tuple[torch.nn.Module, Path]:
    """The trained model (TeSO or GAVS) from `train.out_dir` (`best` or `last` checkpoint) and its folder."""
    out = Path(cfg.train.out_dir)
    folder = out / "best" if which == "best" and (out / "best" / "model.safetensors").exists() else latest_checkpoint(out)
    if folder is None:
        raise FileNotFoundError(f"no checkpoint in {out}; run `teso train` first")
    model = build_model(model_config(cfg, stores))
    model.load_trainable_state_dict(load_file(str(folder / "model.safetensors")))
    model.eval()
    return model, folder
