"""`teso score`: AVSBench metrics for any method's predicted masks saved as PNG.

Layout: `--gt DIR` holds ground-truth masks (gray class index, 0/255 binary, or AVSBench palette
colours) at `VIDEO/.../NAME.png`; `--pred DIR` holds predictions at the same relative paths. The
parent folder of a mask is its video (mIoU and F are averaged per video first, as AVSBench does).
Binary predictions are gray probability maps (0-255 -> 0-1) or 0/1 masks; semantic predictions
are class-index PNGs (gray or palette). A missing prediction is scored as an empty mask and
reported; a prediction of another size is resized to its ground truth's (bilinear for
probabilities, nearest for classes) and counted.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from model.metrics import semantic_metrics
from pipeline.data.palette import rgb_to_index
from pipeline.evaluation.segmentation import binary_scores


@dataclass
class ScoreReport:
    metrics: dict
    frames: int
    videos: int
    missing: list[str] = field(default_factory=list)
    resized: list[str] = field(default_factory=list)


def _class_map(path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    img = Image.open(path)
    if size is not None and img.size != size:
        img = img.resize(size, Image.NEAREST)
    if img.mode in ("RGB", "RGBA"):
        return rgb_to_index(np.asarray(img.convert("RGB")))
    return np.asarray(img.convert("L") if img.mode not in ("L", "P", "I") else img, dtype=np.int64)


def _binary(path: Path) -> np.ndarray:
    """Foreground = any non-black pixel (gray index, 0/255, palette or plain white masks alike)."""
    return (np.asarray(Image.open(path).convert("RGB")).max(axis=2) > 0).astype(np.int64)


def _probability(path: Path, size: tuple[int, int]) -> np.ndarray:
    img = Image.open(path).convert("L")
    if img.size != size:
        img = img.resize(size, Image.BILINEAR)
    arr = np.asarray(img, dtype=np.float32)
    return arr / 255.0 if arr.max() > 1 else arr


def score_folders(pred_dir: str | Path, gt_dir: str | Path, threshold: float = 0.5, semantic: bool = False, num_classes: int = 71) -> ScoreReport:
    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    for d, what in ((pred_dir, "--pred"), (gt_dir, "--gt")):
        if not d.is_dir():
            raise FileNotFoundError(f"{what} folder not found: {d}")
    gts = sorted(gt_dir.rglob("*.png"))
    if not gts:
        raise ValueError(f"no ground-truth PNG masks under {gt_dir}")
    report = ScoreReport(metrics={}, frames=len(gts), videos=0)
    preds, labels, videos = [], [], []
    for gt_path in gts:
        rel = gt_path.relative_to(gt_dir)
        gt = _class_map(gt_path) if semantic else _binary(gt_path)
        size = (gt.shape[1], gt.shape[0])
        pred_path = pred_dir / rel
        if not pred_path.exists():
            report.missing.append(str(rel))
            pred = np.zeros(gt.shape, np.int64 if semantic else np.float32)
        else:
            if Image.open(pred_path).size != size:
                report.resized.append(str(rel))
            pred = _class_map(pred_path, size) if semantic else _probability(pred_path, size)
        preds.append(torch.from_numpy(np.ascontiguousarray(pred)))
        labels.append(torch.from_numpy(gt))
        videos.append(str(rel.parent))
    report.videos = len(set(videos))
    p, g = torch.stack(preds), torch.stack(labels)
    if semantic:
        report.metrics = semantic_metrics(p, g, num_classes)
    else:
        scores = binary_scores(p, g, videos, threshold)
        report.metrics = {"miou": scores["miou"], "fscore": scores["fscore"], "threshold": threshold}
    return report
