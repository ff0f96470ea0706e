"""Glue between the caches and the model package: manifest + feature store -> datasets, then
the training recipe (model.train) with AVSBench validation metrics.

The model package knows nothing about Parquet; this module turns cached rows into
`FrameSample`s and memory-mapped feature lookups.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow.compute as pc
import torch

from pipeline.config import Config, save_effective_config
from pipeline.feature_store import FeatureStore
from pipeline.features_stage import audio_store, text_store
from pipeline.manifest_stage import load_manifest


@dataclass
class Stores:
    audio: FeatureStore
    text: FeatureStore

    def audio_lookup(self, key):
        return self.audio.get(key)

    def text_lookup(self, key):
        return self.text.get(key), self.text.get_valid(key)


def open_stores(cfg: Config, condition: str | None = None) -> Stores:
    name = condition or cfg.train.audio_condition
    specs = {s.name: s for s in cfg.features.audio.conditions}
    if name not in specs:
        raise ValueError(f"audio condition {name!r} is not configured (features.audio.conditions: {sorted(specs)})")
    return Stores(audio_store(cfg, specs[name]), text_store(cfg))


def frame_samples(cfg: Config, split: str, stores: Stores):
    """FrameSamples of one split whose audio and text features are cached; returns (samples, skipped)."""
    from model.data import FrameSample

    manifest = load_manifest(cfg)
    rows = manifest.filter(pc.equal(manifest["split"], split)).to_pylist()
    samples, skipped = [], 0
    for r in rows:
        audio_key = (r["dataset"], r["subset"], r["uid"])
        text_key = (r["dataset"], r["subset"], r["uid"], r["frame"])
        if audio_key not in stores.audio or text_key not in stores.text:
            skipped += 1
            continue
        samples.append(
            FrameSample(
                uid=r["uid"],
                subset=r["subset"],
                frame=r["frame"],
                frame_path=r["frame_path"],
                mask_path=r["mask_semantic_path"],
                has_mask=r["has_mask"],
                audio_key=audio_key,
                text_key=text_key,
            )
        )
    return samples, skipped


def text_dim(stores: Stores) -> int:
    keys = stores.text.keys()
    if not keys:
        raise ValueError(f"no text features in {stores.text.path}; run `teso features` first")
    return int(stores.text.get(keys[0]).shape[-1])


def model_config(cfg: Config, stores: Stores):
    from model.config import TeSOConfig

    values = dict(cfg.train.model)
    values.setdefault("text_dim", text_dim(stores))
    return TeSOConfig(**values)


def recipe_config(cfg: Config):
    from model.config import TrainConfig

    values = {"image_size": cfg.train.image_size, "out_dir": str(cfg.train.out_dir)} | dict(cfg.train.recipe)
    return TrainConfig(**values)


def make_dataset(cfg: Config, samples, stores: Stores, train: bool, num_labels: int, seed: int = 0):
    from model.data import AVSFrameDataset

    return AVSFrameDataset(
        samples,
        stores.audio_lookup,
        stores.text_lookup,
        image_size=cfg.train.image_size,
        train=train,
        augment=cfg.train.augment,
        num_labels=num_labels,
        seed=seed,
    )


@torch.no_grad()
def predict(model, dataset, batch_size: int = 8, device: str | torch.device = "cpu"):
    """Yield (batch, scores) over a dataset in order; scores (B, N_C, H, W) from the model's
    semantic inference (for binary AVS: the sounding-object probability map)."""
    from torch.utils.data import DataLoader

    from model.data import collate

    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate, num_workers=0)
    for batch in loader:
        out = model(
            batch["pixel_values"].to(device),
            batch["audio"].to(device),
            batch["cues"].to(device),
            batch["cue_valid"].to(device),
        )
        yield batch, out


def binary_scores(cfg_threshold: float, model, dataset, max_videos: int | None = None, device="cpu") -> dict:
    """AVSBench binary mIoU and F-score of `model` on `dataset` (frames with a mask only)."""
    from model.metrics import binary_fscore, binary_miou

    probs, gts, videos = [], [], []
    vid_ids: dict[tuple, int] = {}
    for batch, out in predict(model, dataset, device=device):
        score = out.semantic_map[:, 0].clamp(0, 1).float().cpu()  # (B, H, W)
        for i in range(score.shape[0]):
            if not bool(batch["has_mask"][i]):
                continue
            vid = vid_ids.setdefault((batch["subset"][i], batch["uid"][i]), len(vid_ids))
            if max_videos is not None and vid >= max_videos:
                continue
            probs.append(score[i])
            gts.append(batch["mask"][i] > 0)
            videos.append(vid)
    if not probs:
        raise ValueError("no frame with a ground-truth mask to score")
    p, g, v = torch.stack(probs), torch.stack(gts), torch.tensor(videos)
    return {
        "miou": float(binary_miou(p, g, threshold=cfg_threshold, video_index=v, from_logits=False)),
        "fscore": float(binary_fscore(p, g, video_index=v, from_logits=False)),
        "frames": len(probs),
        "videos": len(set(videos)),
    }


def run_training(cfg: Config, resume: bool = True):
    """Train TeSO on the cached features of `train.train_split`, validating on `train.val_split`.
    Returns (TrainResult, number of frames skipped because their features are not cached)."""
    from model.train import train

    stores = open_stores(cfg)
    train_samples, skipped = frame_samples(cfg, cfg.train.train_split, stores)
    model_cfg = model_config(cfg, stores)
    recipe = recipe_config(cfg)
    from model.data import build_training_samples

    train_set = make_dataset(cfg, build_training_samples(train_samples), stores, True, model_cfg.num_labels, recipe.seed)
    val_set, validate = None, None
    if cfg.train.val_split:
        val_samples, _ = frame_samples(cfg, cfg.train.val_split, stores)
        if val_samples:
            val_set = make_dataset(cfg, val_samples, stores, False, model_cfg.num_labels)
            if model_cfg.num_labels == 1:
                def validate(model, dataset):
                    device = next(model.parameters()).device
                    return binary_scores(cfg.train.threshold, model, dataset, cfg.train.max_val_videos, device)
    Path(recipe.out_dir).mkdir(parents=True, exist_ok=True)
    save_effective_config(cfg, Path(recipe.out_dir))
    result = train(model_cfg, recipe, train_set, val_set, validate, select_metric=cfg.train.select_metric, resume=resume)
    return result, skipped


def load_trained(cfg: Config, stores: Stores, which: str = "best"):
    """The trained TeSO model from `train.out_dir` (`best` or `last` checkpoint)."""
    from safetensors.torch import load_file

    from model.segmenter import TeSOSegmenter
    from model.train import latest_checkpoint

    out = Path(cfg.train.out_dir)
    folder = out / "best" if which == "best" and (out / "best" / "model.safetensors").exists() else latest_checkpoint(out)
    if folder is None:
        raise FileNotFoundError(f"no checkpoint in {out}; run `teso train` first")
    model = TeSOSegmenter(model_config(cfg, stores))
    model.load_trainable_state_dict(load_file(str(folder / "model.safetensors")))
    model.eval()
    return model, folder
