"""Vectorized AVSBench metrics vs a straightforward per-frame, per-threshold loop (the reference's
structure), on the same random predictions: times, speed ratio, and the largest value difference.

    .venv/bin/python bench/bench_metrics.py [--quick]
"""
from __future__ import annotations

import json
import sys
import time

import torch

from model.metrics import binary_fscore, binary_miou, thresholds


def loop_metrics(prob: torch.Tensor, gt: torch.Tensor, video: torch.Tensor, threshold: float) -> tuple[float, float]:
    mious, fs = [], []
    th = thresholds()
    for v in torch.unique(video).tolist():
        p, g = prob[video == v], gt[video == v]
        ious, curves = [], []
        for i in range(p.shape[0]):
            pb = (p[i] > threshold).int()
            if g[i].sum() == 0:
                ious.append(float(((1 - pb) * (1 - g[i])).sum()) / (g[i].numel() + 1e-7))
            else:
                ious.append(float((pb * g[i]).sum()) / (float(torch.max(pb, g[i]).sum()) + 1e-7))
                curve = torch.zeros(len(th), dtype=torch.float64)
                for t in range(len(th)):
                    y = (p[i] >= th[t]).double()
                    tp = float((y * g[i]).sum())
                    prec, rec = tp / (float(y.sum()) + 1e-20), tp / (float(g[i].sum()) + 1e-20)
                    curve[t] = 0.0 if prec + rec == 0 else 1.3 * prec * rec / (0.3 * prec + rec)
                curves.append(curve)
        mious.append(sum(ious) / len(ious))
        fs.append(float(torch.stack(curves).mean(0).max()) if curves else 0.0)
    return sum(mious) / len(mious), sum(fs) / len(fs)


def run(quick: bool = False) -> dict:
    videos, frames, size = (6, 5, 64) if quick else (100, 5, 224)
    g = torch.Generator().manual_seed(0)
    prob = torch.rand(videos * frames, size, size, generator=g)
    gt = (torch.rand(videos * frames, size, size, generator=g) > 0.6).long()
    video = torch.arange(videos).repeat_interleave(frames)
    t0 = time.perf_counter()
    fast = (binary_miou(prob, gt, 0.5, video, from_logits=False), binary_fscore(prob, gt, video, from_logits=False))
    t_fast = time.perf_counter() - t0
    # the loop is timed on a slice and scaled: the full loop would take minutes
    n_loop = videos if quick else 10
    sel = video < n_loop
    t0 = time.perf_counter()
    slow = loop_metrics(prob[sel], gt[sel], video[sel], 0.5)
    t_slow = (time.perf_counter() - t0) * videos / n_loop
    fast_sub = (binary_miou(prob[sel], gt[sel], 0.5, video[sel], from_logits=False), binary_fscore(prob[sel], gt[sel], video[sel], from_logits=False))
    return {
        "frames": videos * frames,
        "size": size,
        "vectorized_s": t_fast,
        "loop_s_estimated": t_slow,
        "loop_videos_timed": n_loop,
        "speedup": t_slow / t_fast,
        "max_abs_diff": max(abs(a - b) for a, b in zip(fast_sub, slow)),
        "values": {"miou": fast[0], "fscore": fast[1]},
    }


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
