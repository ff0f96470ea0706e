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


def _norm(word: str) -> str:
    from pipeline.cue_parser import normalize_cue

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
