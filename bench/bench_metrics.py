"""Vectorized AVSBench metrics (`model.metrics`) against straightforward loops with the reference's
structure, on the same random data: both times, the speed ratio, and the largest value difference.

    .venv/bin/python bench/bench_metrics.py [--quick]

Binary: 100 videos x 5 frames x 224x224 logits (quick: 6 x 5 x 64x64), with some empty ground
truths and one video of only empty ones, so every rule of the reference is exercised. The loop goes
frame by frame and threshold by threshold like AVSBench's `mask_iou` / `Eval_Fmeasure`, but in
float64 so that both sides should agree to rounding (~1e-15). Semantic: the same frames as 71-class
maps; the loop is a float64 port of `_batch_miou_fscore` (one `torch.histc` per frame and area).
The vectorized side is timed as the median of 3 runs, the loop once.
"""
from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable

import torch

from model.metrics import (
    BETA2,
    binary_fscore,
    binary_miou,
    semantic_metrics,
    thresholds,
)


def loop_binary(logits: torch.Tensor, gt: torch.Tensor, video: torch.Tensor, threshold: float) -> dict[str, float]:
    """mIoU and F-score one frame and one threshold at a time (AVSBench's loops, float64 ratios)."""
    th = thresholds()
    mious, fscores = [], []
    for v in torch.unique(video).tolist():
        prob = torch.sigmoid(logits[video == v])
        g = gt[video == v]
        ious, curves = [], []
        for i in range(prob.shape[0]):
            pred = (prob[i] > threshold).int()
            if g[i].sum() == 0:  # empty ground truth: the share of pixels correctly left empty
                ious.append(float(((1 - pred) * (1 - g[i])).sum()) / (g[i].numel() + 1e-7))
                continue  # and no F curve
            ious.append(float((pred * g[i]).sum()) / (float(torch.max(pred, g[i]).sum()) + 1e-7))
            curve = []
            for t in th:
                y = (prob[i] >= t).int()
                tp = float((y * g[i]).sum())
                precision, recall = tp / (float(y.sum()) + 1e-20), tp / (float(g[i].sum()) + 1e-20)
                curve.append(0.0 if precision + recall == 0 else (1 + BETA2) * precision * recall / (BETA2 * precision + recall))
            curves.append(curve)
        mious.append(sum(ious) / len(ious))
        # a video with only empty ground truths keeps the reference's zero curve
        fscores.append(max(sum(c[k] for c in curves) / len(curves) for k in range(len(th))) if curves else 0.0)
    return {"miou": sum(mious) / len(mious), "fscore": sum(fscores) / len(fscores)}


def loop_semantic(pred: torch.Tensor, gt: torch.Tensor, num_classes: int) -> dict[str, float]:
    """`_batch_miou_fscore` frame by frame (float64), then test.py's reduction over all classes."""
    predict, target = pred.double() + 1, gt.double() + 1
    inter_map = predict * (predict == target)
    iou_sum = torch.zeros(num_classes, dtype=torch.float64)
    f_sum = torch.zeros(num_classes, dtype=torch.float64)
    frames = torch.zeros(num_classes, dtype=torch.float64)
    for i in range(target.shape[0]):
        a_inter = torch.histc(inter_map[i], bins=num_classes, min=1, max=num_classes)
        a_pred = torch.histc(predict[i], bins=num_classes, min=1, max=num_classes)
        a_lab = torch.histc(target[i], bins=num_classes, min=1, max=num_classes)
        a_union = a_pred + a_lab - a_inter
        iou_sum += a_inter / (2.220446049250313e-16 + a_union)
        frames[a_union > 0] += 1
        precision, recall = a_inter / a_pred, a_inter / a_lab
        f_sum += torch.nan_to_num((1 + BETA2) * precision * recall / (BETA2 * precision + recall), nan=0.0)
    iou_pc = torch.nan_to_num(iou_sum / frames, nan=0.0)
    f_pc = torch.nan_to_num(f_sum / frames, nan=0.0)
    return {"miou": float(iou_pc.mean()), "fscore": float(f_pc.mean()), "miou_nobg": float(iou_pc[1:].mean()), "fscore_nobg": float(f_pc[1:].mean())}


def _median_time(fn: Callable[[], dict], repeats: int) -> tuple[float, dict]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def _compare(vectorized: Callable[[], dict], loop: Callable[[], dict]) -> dict:
    fast_s, fast = _median_time(vectorized, 3)
    loop_s, slow = _median_time(loop, 1)
    return {
        "vectorized_s": fast_s,
        "loop_s": loop_s,
        "speedup": loop_s / fast_s,
        "max_abs_diff": max(abs(fast[k] - slow[k]) for k in slow),
        "values": fast,
    }


def data(videos: int, frames: int, size: int, num_classes: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    n = videos * frames
    logits = torch.randn(n, size, size, generator=g) * 2
    gt = (torch.rand(n, size, size, generator=g) > 0.6).long()
    gt[::7] = 0  # scattered empty ground truths
    gt[frames : 2 * frames] = 0  # one video with only empty ground truths
    classes = torch.randint(0, num_classes, (n, size, size), generator=g)
    predicted = torch.where(torch.rand(n, size, size, generator=g) > 0.3, classes, torch.randint(0, num_classes, (n, size, size), generator=g))
    return {"logits": logits, "gt": gt, "video": torch.arange(videos).repeat_interleave(frames), "classes": classes, "predicted": predicted}


def run(quick: bool = False) -> dict:
    videos, frames, size, num_classes, threshold = (6, 5, 64, 71, 0.5) if quick else (100, 5, 224, 71, 0.5)
    d = data(videos, frames, size, num_classes)
    logits, gt, video = d["logits"], d["gt"], d["video"]

    def vectorized_binary() -> dict:
        return {"miou": binary_miou(logits, gt, threshold, video), "fscore": binary_fscore(logits, gt, video)}

    def vectorized_semantic() -> dict:
        out = semantic_metrics(d["predicted"], d["classes"], num_classes)
        return {k: out[k] for k in ("miou", "fscore", "miou_nobg", "fscore_nobg")}

    binary = _compare(vectorized_binary, lambda: loop_binary(logits, gt, video, threshold))
    semantic = _compare(vectorized_semantic, lambda: loop_semantic(d["predicted"], d["classes"], num_classes))
    return {
        "data": {"videos": videos, "frames_per_video": frames, "size": size, "num_classes": num_classes, "threshold": threshold, "torch_threads": torch.get_num_threads()},
        **binary,
        "semantic": semantic,
    }


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
