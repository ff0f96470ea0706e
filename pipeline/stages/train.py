"""Train stage: TeSO on the cached features of `train.train_split`, validating on `train.val_split`
with AVSBench metrics; checkpoints, resume and the best-on-validation model in `train.out_dir`.

The recipe itself is model.train; pipeline.model_io turns cached rows into its datasets.
"""
from __future__ import annotations

from pathlib import Path

import torch

from model.data import build_training_samples
from model.train import train
from pipeline.common.atomic import sweep_temporaries
from pipeline.config import Config, save_effective_config
from pipeline.evaluation.segmentation import binary_scores
from pipeline.model_io.checkpoints import model_config, recipe_config
from pipeline.model_io.inference import predict
from pipeline.model_io.samples import frame_samples, make_dataset
from pipeline.stages import lineage
from pipeline.stages.base import Stage


def validation_frames(samples: list, max_videos: int | None) -> list:
    """The frames validation scores: those with a mask, of the first `max_videos` videos (all when
    None), in dataset order. Selected before the dataset is built, so no other frame is predicted."""
    seen: dict[tuple, int] = {}
    return [s for s in samples
            if s.has_mask and (max_videos is None or seen.setdefault((s.subset, s.uid), len(seen)) < max_videos)]


def validation_scores(threshold: float, model, dataset, device="cpu") -> dict:
    """AVSBench binary mIoU and F-score of `model` on the frames of `dataset` that have a mask."""
    probs, gts, videos = [], [], []
    for batch, out in predict(model, dataset, device=device):
        score = out.semantic_map[:, 0].clamp(0, 1).float().cpu()  # (B, H, W)
        for i in range(score.shape[0]):
            if bool(batch["has_mask"][i]):
                probs.append(score[i])
                gts.append(batch["mask"][i] > 0)
                videos.append((batch["subset"][i], batch["uid"][i]))
    if not probs:
        raise ValueError("no frame with a ground-truth mask to score")
    return binary_scores(torch.stack(probs), torch.stack(gts), videos, threshold)


def run_training(cfg: Config, resume: bool = True):
    """Train TeSO; returns (TrainResult, number of frames skipped because their features are not cached)."""
    stores = lineage.open_stores(cfg)
    train_samples, skipped = frame_samples(cfg, cfg.train.train_split, stores)
    model_cfg = model_config(cfg, stores)
    recipe = recipe_config(cfg)
    train_set = make_dataset(cfg, build_training_samples(train_samples), stores, True, model_cfg.num_labels, recipe.seed)
    val_set, validate = None, None
    if cfg.train.val_split:
        val_samples, _ = frame_samples(cfg, cfg.train.val_split, stores)
        val_samples = validation_frames(val_samples, cfg.train.max_val_videos)
        if val_samples:
            val_set = make_dataset(cfg, val_samples, stores, False, model_cfg.num_labels)
            if model_cfg.num_labels == 1:
                def validate(model, dataset):
                    device = next(model.parameters()).device
                    return validation_scores(cfg.train.threshold, model, dataset, device)
    Path(recipe.out_dir).mkdir(parents=True, exist_ok=True)
    for folder in (Path(recipe.out_dir), Path(recipe.out_dir) / "checkpoints"):
        sweep_temporaries(folder)  # checkpoint folders a killed run left half-written
    save_effective_config(cfg, Path(recipe.out_dir))
    result = train(model_cfg, recipe, train_set, val_set, validate, select_metric=cfg.train.select_metric, resume=resume)
    return result, skipped


STAGE = Stage(name="train", reads=("manifest", "audio_features", "text_features"), writes="train.out_dir (checkpoints)", run=run_training)
