"""AVSBench metrics, reproducing the reference code's quirks (DESIGN section 5), vectorized.

Binary AVS (AVSBench `utility.py`):
- `binary_miou` = `mask_iou`: binarize `prob > threshold` (AVSBench 0.5; GAVS/TeSO 0.4); per frame
  IoU = |P∩G| / (|P∪G| + 1e-7); a frame whose ground truth is empty scores |¬P∩¬G| / (HW + 1e-7),
  the fraction of pixels correctly left empty. Mean over a video's frames, then over videos.
- `binary_fscore` = `Eval_Fmeasure` + `_eval_pr`: 255 thresholds `linspace(0, 1 - 1e-10, 255)` in
  float32 (so the last one is exactly 1.0), `prob >= t`; precision = TP / (|P| + 1e-20), recall =
  TP / (|G| + 1e-20), F = 1.3 P R / (0.3 P + R) with NaN -> 0; frames with empty ground truth are
  skipped; the F curve is averaged over a video's remaining frames, its max taken, then the mean
  over videos. A video whose ground truths are all empty scores 0 in the reference (its curve stays
  zero); `empty_video="skip"` leaves such videos out instead.
Semantic AVSS (AVSBench `avsbench_eval.py`, `_batch_miou_fscore` + the test loop):
- per frame and class: IoU = inter / (union + 2.22e-16), F from precision inter/pred and recall
  inter/label (NaN -> 0); both summed per class over frames, divided by the number of frames where
  the class is in the union (predicted or labelled); classes never seen count 0 and the mean runs
  over all classes (`classes="all"`, faithful) or only the classes that appeared
  (`classes="appeared"`). "No background" drops class 0.

Inputs are torch tensors; everything is computed for all frames and thresholds at once (a
bincount over per-pixel threshold ranks replaces the reference's per-threshold loop).
"""
from __future__ import annotations

import torch

BETA2 = 0.3
N_THRESHOLDS = 255


def _probs(x: torch.Tensor, from_logits: bool) -> torch.Tensor:
    x = x.float()
    return torch.sigmoid(x) if from_logits else x


def _video_mean(values: torch.Tensor, video_index: torch.Tensor | None, valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-video mean of per-frame values (N, ...) -> (V, ...) and the per-video frame counts."""
    n = values.shape[0]
    vid = torch.zeros(n, dtype=torch.long) if video_index is None else torch.as_tensor(video_index, dtype=torch.long)
    _, vid = torch.unique(vid, return_inverse=True)
    n_vid = int(vid.max()) + 1 if n else 0
    weight = torch.ones(n, dtype=torch.float64) if valid is None else valid.to(torch.float64)
    sums = torch.zeros((n_vid, *values.shape[1:]), dtype=torch.float64).index_add_(0, vid, values.double() * weight.view(-1, *[1] * (values.dim() - 1)))
    counts = torch.zeros(n_vid, dtype=torch.float64).index_add_(0, vid, weight)
    return sums / counts.clamp_min(1).view(-1, *[1] * (values.dim() - 1)), counts


def frame_iou(pred: torch.Tensor, gt: torch.Tensor, threshold: float = 0.5, from_logits: bool = True) -> torch.Tensor:
    """(N,) per-frame IoU with AVSBench's empty-ground-truth rule."""
    p = (_probs(pred, from_logits) > threshold).flatten(1)  # (N, HW)
    g = gt.flatten(1) != 0
    hw = p.shape[1]
    # three reductions instead of four masks: |P∪G| = |P| + |G| - |P∩G|, |¬P∩¬G| = HW - |P∪G|
    inter = (p & g).sum(1).double()
    n_pred, n_gt = p.sum(1).double(), g.sum(1).double()
    union = n_pred + n_gt - inter
    empty = n_gt == 0
    inter = torch.where(empty, hw - n_pred, inter)
    union = torch.where(empty, torch.full_like(union, hw), union)
    return inter / (union + 1e-7)


def binary_miou(pred, gt, threshold: float = 0.5, video_index=None, from_logits: bool = True) -> float:
    """AVSBench mIoU: pred (N, H, W) logits (or probabilities with from_logits=False), gt (N, H, W)
    binary; video_index (N,) groups frames into videos (None = one video)."""
    per_video, _ = _video_mean(frame_iou(pred, gt, threshold, from_logits), video_index)
    return float(per_video.mean()) if per_video.numel() else 0.0


def thresholds(n: int = N_THRESHOLDS) -> torch.Tensor:
    return torch.linspace(0, 1 - 1e-10, n)  # float32, as the reference (last value rounds to 1.0)


def frame_fscore_curves(pred, gt, from_logits: bool = True, n: int = N_THRESHOLDS) -> torch.Tensor:
    """(N, n) F-measure per frame and threshold (beta^2 = 0.3), prob >= threshold."""
    p = _probs(pred, from_logits).flatten(1)  # (N, HW)
    g = gt.bool().flatten(1)
    th = thresholds(n)
    # rank[k] = number of thresholds <= p[k]: the pixel is positive for exactly thresholds 0..rank-1
    rank = torch.searchsorted(th, p.contiguous(), right=True, out_int32=True)  # (N, HW) in [0, n]
    frames = p.shape[0]
    # int32 indices and a weighted count (not a boolean gather) keep the two bincounts cheap
    idx = (rank + (torch.arange(frames, dtype=torch.int32) * (n + 1))[:, None]).flatten()
    hist_all = torch.bincount(idx, minlength=frames * (n + 1)).view(frames, n + 1)
    hist_tp = torch.bincount(idx, weights=g.flatten().double(), minlength=frames * (n + 1)).view(frames, n + 1)
    # positives at threshold t = pixels whose rank > t: reversed cumulative sum, dropping rank 0
    pos = hist_all.flip(1).cumsum(1).flip(1)[:, 1:].double()  # (N, n)
    tp = hist_tp.flip(1).cumsum(1).flip(1)[:, 1:].double()
    prec = tp / (pos + 1e-20)
    recall = tp / (g.sum(1, keepdim=True).double() + 1e-20)
    f = (1 + BETA2) * prec * recall / (BETA2 * prec + recall)
    return torch.nan_to_num(f, nan=0.0)


def binary_fscore(pred, gt, video_index=None, from_logits: bool = True, empty_video: str = "zero") -> float:
    """AVSBench F-score (see module docstring); empty_video "zero" (faithful) or "skip"."""
    if empty_video not in ("zero", "skip"):
        raise ValueError(f"empty_video must be 'zero' or 'skip', got {empty_video!r}")
    nonempty = gt.bool().flatten(1).any(1)  # frames with an empty ground truth are skipped
    curves = frame_fscore_curves(pred, gt, from_logits)
    per_video, counts = _video_mean(curves, video_index, valid=nonempty)  # (V, n)
    best = per_video.max(1).values  # a video with no valid frame keeps a zero curve -> 0
    if empty_video == "skip":
        best = best[counts > 0]
    return float(best.mean()) if best.numel() else 0.0


def semantic_metrics(pred_class_map, gt_class_map, num_classes: int, classes: str = "all") -> dict:
    """AVSS metrics from (N, H, W) predicted and ground-truth class maps (0 = background).

    Returns miou, fscore (with background), miou_nobg, fscore_nobg (class 0 left out), and the
    per-class values and frame counts behind them."""
    if classes not in ("all", "appeared"):
        raise ValueError(f"classes must be 'all' or 'appeared', got {classes!r}")
    pred = pred_class_map.long().flatten(1)  # (N, HW)
    gt = gt_class_map.long().flatten(1)
    if pred.numel() and (int(pred.max()) >= num_classes or int(gt.max()) >= num_classes or int(gt.min()) < 0):
        raise ValueError(f"class indices must lie in [0, {num_classes})")
    frames = pred.shape[0]
    offset = (torch.arange(frames) * num_classes)[:, None]

    def area(idx: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        flat = (idx + offset)[keep] if keep is not None else (idx + offset).flatten()
        return torch.bincount(flat, minlength=frames * num_classes).view(frames, num_classes).double()

    inter = area(pred, pred == gt)  # (N, C)
    a_pred, a_lab = area(pred), area(gt)
    union = a_pred + a_lab - inter
    iou = inter / (union + 2.220446049250313e-16)
    precision, recall = inter / a_pred, inter / a_lab
    f = torch.nan_to_num((1 + BETA2) * precision * recall / (BETA2 * precision + recall), nan=0.0)
    counts = (union > 0).sum(0).double()  # frames in which each class is predicted or labelled
    iou_pc = torch.nan_to_num(iou.sum(0) / counts, nan=0.0)
    f_pc = torch.nan_to_num(f.sum(0) / counts, nan=0.0)

    def mean(values: torch.Tensor, start: int) -> float:
        v, c = values[start:], counts[start:]
        v = v if classes == "all" else v[c > 0]
        return float(v.mean()) if v.numel() else 0.0

    return {
        "miou": mean(iou_pc, 0),
        "fscore": mean(f_pc, 0),
        "miou_nobg": mean(iou_pc, 1),
        "fscore_nobg": mean(f_pc, 1),
        "per_class_miou": {c: float(iou_pc[c]) for c in range(num_classes) if counts[c] > 0},
        "per_class_fscore": {c: float(f_pc[c]) for c in range(num_classes) if counts[c] > 0},
        "class_frames": {c: int(counts[c]) for c in range(num_classes) if counts[c] > 0},
    }
