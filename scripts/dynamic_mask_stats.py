#!/usr/bin/env python3
"""What a trained run's dynamic mask does with sounding and silent cues, on one split.

    .venv/bin/python scripts/dynamic_mask_stats.py --config configs/demo.yaml --run teso \
        [--out-dir runs/demo/seed0] [--split val] [--checkpoint best] [key=value ...]

Per valid cue of every frame with a mask: its score xi under normal audio and whether it names a
ground-truth sounding class (as cue recognition matches them). Prints the share of sounding and of
silent cues the mask keeps, and the AUC of xi separating them (0.5: the scores say nothing).
The numbers in docs/METHOD.md "Dynamic mask" and the README come from this script.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.stats import mannwhitneyu  # noqa: E402

from pipeline.config import load_config, run_config, with_overrides  # noqa: E402
from pipeline.data.avsbench import decode_mask, read_label2idx  # noqa: E402
from pipeline.evaluation.cue_recognition import _norm  # noqa: E402
from pipeline.model_io.checkpoints import load_trained  # noqa: E402
from pipeline.model_io.inference import run_condition  # noqa: E402
from pipeline.model_io.samples import frame_samples, make_dataset  # noqa: E402
from pipeline.stages import lineage  # noqa: E402
from pipeline.stages.train import validation_frames  # noqa: E402


def mask_stats(cfg, split: str, checkpoint: str) -> dict:
    stores = lineage.open_stores(cfg, cfg.eval.reference_condition)
    model, _ = load_trained(cfg, stores, checkpoint)
    samples, _ = frame_samples(cfg, split, stores)
    dataset = make_dataset(cfg, validation_frames(samples, None), stores, False, model.config.num_labels)
    res = run_condition(model, dataset, "cpu")
    names = {v - 1: k for k, v in read_label2idx(cfg.dataset.root).items()}
    cues = lineage.cue_lists(cfg)
    scores, sounding, kept = [], [], []
    for i, key in enumerate(res.keys):
        if res.cue_scores[i] is None:
            raise ValueError("this run scores no cues against audio (no text, no audio or no SeDAM)")
        gt = decode_mask(dataset.samples[i].mask_path, "semantic")
        truth = {_norm(names[int(c)]) for c in np.unique(gt) if c and int(c) in names}
        for j, cue in enumerate(cues.get(key, [])[: len(res.cue_scores[i])]):
            scores.append(float(res.cue_scores[i][j]))
            sounding.append(_norm(cue) in truth)
            kept.append(bool(res.cue_kept[i][j]))
    s, y, k = np.array(scores), np.array(sounding), np.array(kept)
    auc = mannwhitneyu(s[y], s[~y]).statistic / (y.sum() * (~y).sum()) if y.any() and (~y).any() else float("nan")
    return {"cues": len(s), "sounding_share": float(y.mean()), "kept_sounding": float(k[y].mean()),
            "kept_silent": float(k[~y].mean()), "auc": float(auc)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/demo.yaml")
    parser.add_argument("--run", default=None, help="a run of the config (default: the config itself)")
    parser.add_argument("--out-dir", default=None, help="the folder holding the run's folder (e.g. runs/demo/seed1)")
    parser.add_argument("--split", default="val")
    parser.add_argument("--checkpoint", default="best", choices=("best", "last"))
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cfg = load_config(args.config, args.overrides)
    if args.run:
        cfg = run_config(cfg, args.run)
    if args.out_dir:
        cfg = with_overrides(cfg, [f"train.out_dir={Path(args.out_dir) / Path(cfg.train.out_dir).name}"], "--out-dir")
    r = mask_stats(cfg, args.split, args.checkpoint)
    print(f"{cfg.train.out_dir} ({args.split}, {args.checkpoint}): {r['cues']} cues, {r['sounding_share']:.0%} sounding; "
          f"kept {r['kept_sounding']:.0%} of sounding, {r['kept_silent']:.0%} of silent; AUC of xi {r['auc']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
