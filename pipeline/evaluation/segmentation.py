"""AVSBench segmentation metrics assembled from per-frame outputs: the one place where binary mIoU
and F-score are put together (validation during training, `teso eval`, `teso score`), the per-subset
split of Table 1, and the AVSS per-class table with Table 6's cue filter."""
from __future__ import annotations

from typing import Hashable, Sequence

import torch

from model.metrics import binary_fscore, binary_miou, semantic_metrics
from pipeline.model_io.inference import ConditionOutputs
from pipeline.text.cue_parser import normalize_cue


def binary_scores(probs: torch.Tensor, gts: torch.Tensor, videos: Sequence[Hashable], threshold: float) -> dict:
    """AVSBench mIoU and F-score of (N, H, W) probabilities against (N, H, W) masks; `videos` names
    each frame's video (means run over a video's frames first, then over videos)."""
    ids: dict[Hashable, int] = {}
    video = torch.tensor([ids.setdefault(v, len(ids)) for v in videos])
    return {
        "miou": float(binary_miou(probs, gts, threshold=threshold, video_index=video, from_logits=False)),
        "fscore": float(binary_fscore(probs, gts, video_index=video, from_logits=False)),
        "frames": int(probs.shape[0]),
        "videos": len(ids),
    }


def binary_metrics(res: ConditionOutputs, threshold: float) -> dict:
    """Binary AVS metrics over every frame with a mask, and per subset (v1s = S4, v1m = MS3,
    v2 = AVSS-binary) as the paper's Table 1 reports them."""
    idx = [i for i, m in enumerate(res.has_mask) if m]
    if not idx:
        raise ValueError("no frame with a ground-truth mask in the evaluation split")
    probs = torch.stack([res.scores[i][0].clamp(0, 1) for i in idx])  # (N, H, W)
    gts = torch.stack([res.gts[i] > 0 for i in idx])
    videos = [res.keys[i][:2] for i in idx]

    def scores(rows: list[int]) -> dict:
        out = binary_scores(probs[rows], gts[rows], [videos[k] for k in rows], threshold)
        del out["videos"]
        return out

    out = scores(list(range(len(idx))))
    subsets = [res.keys[i][0] for i in idx]
    out["by_subset"] = {name: scores([k for k, s in enumerate(subsets) if s == name]) for name in sorted(set(subsets))}
    return out


def cue_filter(scores: torch.Tensor, cues: list[str], class_names: dict[int, str]) -> torch.Tensor:
    """The "baseline filter" of the paper's Table 6: a model without text, whose predicted classes
    are intersected with the reasoner's cues at evaluation. Classes not named by any cue get score
    0 (background always stays); scores (C, H, W)."""
    named = {normalize_cue(c) or c for c in cues}
    keep = torch.tensor([c == 0 or (normalize_cue(class_names.get(c, "")) or class_names.get(c)) in named for c in range(scores.shape[0])])
    return scores * keep[:, None, None]


def semantic_metrics_table(res: ConditionOutputs, num_classes: int, class_names: dict[int, str], cues: dict[tuple, list[str]] | None = None) -> dict:
    """AVSS metrics; with `cues`, each frame's scores are cue-filtered first (Table 6)."""
    idx = [i for i, m in enumerate(res.has_mask) if m]
    scores = [res.scores[i] if cues is None else cue_filter(res.scores[i], cues.get(res.keys[i], []), class_names) for i in idx]
    preds = torch.stack([s.argmax(0) for s in scores])
    gts = torch.stack([res.gts[i] for i in idx])
    out = semantic_metrics(preds, gts, num_classes)
    out["frames"] = len(idx)
    out["class_names"] = class_names
    return out
