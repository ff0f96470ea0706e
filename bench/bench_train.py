"""Benchmark: what TeSO's additions cost a training step, and how long a step waits for data.

(a) Step time of TeSO (SeDAM, dynamic mask, PMQS, InfoNCE, adapters) against the same Mask2Former with
    the same adapters but no prompt at all (use_sedam/use_pmqs/use_text/use_audio off): forward, loss,
    backward and AdamW step on one random batch. The full run uses Mask2Former's real widths with a
    Swin-T backbone (depths 2-2-6-2, 100 queries, 256-d) at 224x224 and the paper's SeDAM (1024-d text,
    4 layers); --quick shrinks everything. The two models alternate and the ratio uses each one's
    fastest step, since the CPU may be shared. Target: ratio <= 1.10.
(b) Share of a training step spent blocked on the DataLoader: the real recipe (`model.train.train`) for
    one epoch over JPEG frames written to disk (720p, as decoded from a video) with num_workers 0, 1, 2;
    the recipe times `next(loader)` against the rest of each step. Also the loader alone (ms per frame),
    to judge other step times. Target: share < 5%.

    .venv/bin/python bench/bench_train.py [--quick] [--device cuda]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader
from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation, SwinConfig
from transformers.utils import logging as hf_logging

from model.config import TeSOConfig
from model.data import AVSFrameDataset, FrameSample, collate
from model.segmenter import TeSOSegmenter
from model.train import TrainConfig, batch_loss, train

N_T = 4


def make_foundation(folder: Path, quick: bool) -> str:
    """A random Mask2Former saved to `folder`: Swin-T at Mask2Former's real widths, or a small one."""
    if quick:
        backbone = SwinConfig(embed_dim=32, depths=[1, 1, 2, 1], num_heads=[1, 2, 4, 8], window_size=7,
                              out_features=["stage1", "stage2", "stage3", "stage4"])
        sizes = dict(hidden_dim=64, mask_feature_size=64, feature_size=64, encoder_feedforward_dim=128,
                     dim_feedforward=256, encoder_layers=2, decoder_layers=4, num_attention_heads=4, num_queries=20)
    else:
        backbone = SwinConfig(embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24], window_size=7,
                              drop_path_rate=0.3, out_features=["stage1", "stage2", "stage3", "stage4"])
        sizes = {}  # Mask2Former defaults: 256-d, 100 queries, 6 encoder and 10 decoder layers
    config = Mask2FormerConfig(backbone_config=backbone, use_timm_backbone=False, num_labels=1, **sizes)
    torch.manual_seed(0)
    Mask2FormerForUniversalSegmentation(config).save_pretrained(folder)
    return str(folder)


def teso_config(foundation: str, quick: bool, prompts: bool) -> TeSOConfig:
    widths = dict(text_dim=64, d_model=64, n_latent=8, n_sedam_layers=2, n_heads=4) if quick else {}
    switches = {} if prompts else dict(use_sedam=False, use_pmqs=False, use_text=False, use_audio=False)
    return TeSOConfig(foundation=foundation, num_labels=1, **widths, **switches)


def random_batch(batch_size: int, size: int, text_dim: int, device: str) -> dict:
    g = torch.Generator().manual_seed(0)
    masks = torch.zeros(batch_size, size, size, dtype=torch.long)
    masks[:, size // 4 : size // 2, size // 3 : 2 * size // 3] = 1
    batch = {
        "pixel_values": torch.randn(batch_size, 3, size, size, generator=g),
        "mask": masks,
        "has_mask": torch.ones(batch_size, dtype=torch.bool),
        "audio": torch.randn(batch_size, 128, generator=g),
        "cues": torch.randn(batch_size, N_T, text_dim, generator=g),
        "cue_valid": torch.tensor([[True, True, True, False]] * batch_size),
    }
    return {k: v.to(device) for k, v in batch.items()}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def step_time_ratio(foundation: str, quick: bool, device: str, batch_size: int, size: int, repeats: int) -> dict:
    models, optimizers = {}, {}
    for name, prompts in (("teso", True), ("adapters_only", False)):
        torch.manual_seed(0)
        model = TeSOSegmenter(teso_config(foundation, quick, prompts)).to(device).train()
        models[name] = model
        optimizers[name] = torch.optim.AdamW(model.param_groups(), weight_decay=0.05)
    batch = random_batch(batch_size, size, models["teso"].config.text_dim, device)

    def step(name: str) -> float:
        _sync(device)
        start = time.perf_counter()
        loss, _ = batch_loss(models[name], batch, num_labels=1)
        loss.backward()
        optimizers[name].step()
        optimizers[name].zero_grad(set_to_none=True)
        _sync(device)
        return time.perf_counter() - start

    for name in models:  # warm-up: allocator, oneDNN / cuDNN primitives
        step(name)
    times = {name: [] for name in models}
    for _ in range(repeats):
        for name in models:
            times[name].append(step(name))
    medians = {name: statistics.median(t) for name, t in times.items()}
    fastest = {name: min(t) for name, t in times.items()}
    return {
        "batch_size": batch_size,
        "image_size": size,
        "repeats": repeats,
        "step_s_median": medians,
        "step_s_fastest": fastest,
        # SeDAM and PMQS exist (unused) in the adapters-only model too, so only TeSO's count is meaningful.
        "trainable_params": sum(p.numel() for p in models["teso"].parameters() if p.requires_grad),
        "total_params": sum(p.numel() for p in models["teso"].parameters()),
        "ratio": fastest["teso"] / fastest["adapters_only"],  # the fastest run is the least disturbed
        "ratio_median": medians["teso"] / medians["adapters_only"],
        "target_ratio": 1.10,
    }


def write_frames(folder: Path, n: int, width: int, height: int) -> list[FrameSample]:
    """n 720p JPEG frames (smooth colour fields plus noise, so they compress like video frames) and masks."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width]
    samples = []
    for i in range(n):
        base = (np.sin(xx[..., None] / rng.uniform(20, 80, 3) + yy[..., None] / rng.uniform(20, 80, 3)) + 1) * 100
        image = np.clip(base + rng.normal(0, 8, (height, width, 3)), 0, 255).astype(np.uint8)
        mask = np.zeros((height, width), dtype=np.uint8)
        mask[height // 4 : 3 * height // 4, width // 3 : 2 * width // 3] = 1
        Image.fromarray(image).save(folder / f"{i}.jpg", quality=90)
        Image.fromarray(mask).save(folder / f"{i}.png")
        samples.append(FrameSample(f"vid{i}", "v2", 0, str(folder / f"{i}.jpg"), str(folder / f"{i}.png"), True, i, i))
    return samples


def data_wait(foundation: str, quick: bool, device: str, batch_size: int, size: int, n_frames: int,
              workers: list[int], folder: Path) -> dict:
    frames = folder / "frames"
    frames.mkdir()
    samples = write_frames(frames, n_frames, 1280, 720)
    text_dim = teso_config(foundation, quick, True).text_dim
    rng = np.random.default_rng(0)
    audio = {i: rng.standard_normal((5, 128)).astype(np.float32) for i in range(n_frames)}
    text = {i: (rng.standard_normal((N_T, text_dim)).astype(np.float32), np.array([True] * 3 + [False]))
            for i in range(n_frames)}
    dataset = AVSFrameDataset(samples, audio.__getitem__, text.__getitem__, image_size=size, train=True)

    start = time.perf_counter()
    for _ in DataLoader(dataset, batch_size=batch_size, num_workers=0, collate_fn=collate):
        pass
    load_ms = (time.perf_counter() - start) / n_frames * 1e3

    shares = {}
    for n_workers in workers:
        cfg = TrainConfig(epochs=1, batch_size=batch_size, num_workers=n_workers, log_every=1000, image_size=size,
                          out_dir=str(folder / f"run{n_workers}"), device=device)
        result = train(teso_config(foundation, quick, True), cfg, dataset, resume=False)
        shares[str(n_workers)] = result.data_wait_share[0]
    return {
        "frames": n_frames,
        "frame_size": "1280x720 JPEG",
        "batch_size": batch_size,
        "load_ms_per_frame": load_ms,
        "data_wait_share_by_num_workers": shares,
        "target_share": 0.05,
    }


def run(quick: bool = False, device: str = "cpu") -> dict:
    hf_logging.set_verbosity_error()  # the re-sized class head warning is expected
    logging.getLogger("model.train").setLevel(logging.WARNING)
    batch_size, size = (2, 128) if quick else (2, 224)
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        foundation = make_foundation(Path(tmp) / "m2f", quick)
        ratio = step_time_ratio(foundation, quick, device, batch_size, size, repeats=2 if quick else 4)
        wait = data_wait(foundation, quick, device, batch_size, size, n_frames=8 if quick else 12,
                         workers=[0, 1] if quick else [0, 1, 2], folder=Path(tmp))
    return {
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "model": "small Mask2Former (quick)" if quick else "Mask2Former Swin-T widths, random weights",
        "step_time": ratio,
        "data_wait": wait,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    print(json.dumps(run(quick=args.quick, device=args.device), indent=2))
