"""Cue recognition (TeSO paper, Table 3): how well the text cues name the sounding objects.

Per frame, the cues form a ranked list (REC#1: the reasoner's order; REC#2: the cues the
dynamic mask keeps, ranked by their score xi). A cue is a hit when it names one of the frame's
ground-truth sounding classes (exact match after lower-casing and singularising; the first hit per
class counts, repeats do not). Average precision of a frame = mean over ground-truth classes of
the precision at the rank where that class is first hit (0 for a class never named). AP is the
mean over frames with at least one sounding object; frames where nothing sounds are skipped, as
AP is undefined there.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import torch

from pipeline.model_io.inference import ConditionOutputs
from pipeline.text.cue_parser import normalize_cue


def _norm(word: str) -> str:
    return normalize_cue(word) or word.strip().lower()


def average_precision(ranked: Sequence[str], truth: Iterable[str]) -> float | None:
    """AP of one ranked cue list against a set of ground-truth class names (None if no truth)."""
    gt = {_norm(t) for t in truth}
    if not gt:
        return None
    found: set[str] = set()
    hits, precisions = 0, []
    for rank, cue in enumerate(ranked, start=1):
        word = _norm(cue)
        if word in gt and word not in found:
            found.add(word)
            hits += 1
            precisions.append(hits / rank)
    return sum(precisions) / len(gt)


def mean_average_precision(pairs: Iterable[tuple[Sequence[str], Iterable[str]]]) -> tuple[float, int]:
    """(mAP, frames counted) over (ranked cues, truth) pairs; frames without truth are skipped."""
    aps = [ap for ranked, truth in pairs if (ap := average_precision(ranked, truth)) is not None]
    return (sum(aps) / len(aps) if aps else 0.0), len(aps)


def _truth_names(gt: torch.Tensor, class_names: dict[int, str]) -> list[str]:
    return [class_names[int(c)] for c in torch.unique(gt).tolist() if int(c) != 0 and int(c) in class_names]


def cue_recognition(res: ConditionOutputs, cues: dict[tuple, list[str]], semantic_gts: dict[tuple, torch.Tensor],
                    class_names: dict[int, str], n_t: int) -> dict:
    """REC#1 (the reasoner's first n_t cues, in order) and REC#2 (the cues the dynamic mask keeps,
    by score) over the frames of one evaluation pass, and the share of cues the mask keeps."""
    rec1, rec2, shares = [], [], []
    for i, key in enumerate(res.keys):
        if key not in cues or key not in semantic_gts:
            continue
        truth = _truth_names(semantic_gts[key], class_names)
        ranked = cues[key][:n_t]
        rec1.append((ranked, truth))
        if res.cue_kept[i] is not None and res.cue_scores[i] is not None:  # cues were scored against audio
            kept = [j for j in range(len(ranked)) if res.cue_kept[i][j]]
            if ranked:
                shares.append(len(kept) / len(ranked))
            kept.sort(key=lambda j: -float(res.cue_scores[i][j]))
            rec2.append(([ranked[j] for j in kept], truth))
    ap1, n1 = mean_average_precision(rec1)
    out = {"rec1_ap": ap1, "rec1_frames": n1}
    if shares:  # how many of the reasoner's cues the dynamic mask lets through, on average
        out["cue_kept_share"] = float(np.mean(shares))
    if rec2:
        ap2, n2 = mean_average_precision(rec2)
        out |= {"rec2_ap": ap2, "rec2_frames": n2}
    return out
