"""Manifest rows and feature stores -> the model package's samples and datasets."""
from __future__ import annotations

import pyarrow.compute as pc

from model.data import AVSFrameDataset, FrameSample
from pipeline.config import Config
from pipeline.stages import lineage
from pipeline.stages.lineage import Stores, load_manifest


def frame_samples(cfg: Config, split: str, stores: Stores) -> tuple[list[FrameSample], int]:
    """FrameSamples of one split whose audio and (when the stores have a text store) text features
    are cached; returns (samples, skipped)."""
    manifest = load_manifest(cfg)
    rows = manifest.filter(pc.equal(manifest["split"], split)).to_pylist()
    text_keys = lineage.text_keys(cfg) if stores.text is not None else {}  # looked up under the content they came from
    samples, skipped = [], 0
    for r in rows:
        audio_key = (r["dataset"], r["subset"], r["uid"], r["audio_sha"])
        text_key = text_keys.get((r["dataset"], r["subset"], r["uid"], r["frame"]))
        if audio_key not in stores.audio or (stores.text is not None and (text_key is None or text_key not in stores.text)):
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


def make_dataset(cfg: Config, samples, stores: Stores, train: bool, num_labels: int, seed: int = 0) -> AVSFrameDataset:
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
