"""AVSBench evaluation metrics (docs/METRICS.md), vectorized, with the reference code's quirks.

Papers report the numbers of AVSBench's own scripts, so each function reproduces one of them:

- `frame_iou` / `binary_miou` reproduce `mask_iou` (AVSBench `avs_scripts/avs_s4/utils/utility.py`):
  `P = prob > threshold` (strict; AVSBench 0.5, GAVS/TeSO 0.4), IoU = |P∩G| / (|P∪G| + 1e-7); a
  frame whose ground truth is empty scores |¬P∩¬G| / (HW + 1e-7), the fraction of pixels correctly
  left empty. The mean runs over a video's frames, then over videos.
- `frame_fscore_curves` / `binary_fscore` reproduce `Eval_Fmeasure` + `_eval_pr` (same file): 255
  thresholds `torch.linspace(0, 1 - 1e-10, 255)` in float32 (the last one rounds to exactly 1.0),
  `P = prob >= t`, precision = TP / (|P| + 1e-20), recall = TP / (|G| + 1e-20),
  F = 1.3 precision recall / (0.3 precision + recall) with NaN (0/0) set to 0. A frame whose ground
  truth is empty (`mean(gt) == 0`) is skipped; the F curve is averaged over a video's remaining
  frames and its maximum taken; then the mean over videos. A video whose ground truths are all empty
  keeps the reference's all-zero curve and scores 0 (`empty_video="zero"`, the default);
  `empty_video="skip"` leaves such videos out of the mean instead.
- `semantic_metrics` reproduces AVSS `calc_color_miou_fscore` -> `_batch_miou_fscore` (AVSBench
  `avs_scripts/avss/utils/compute_color_metrics.py`; `_batch_intersection_union` is its IoU-only
  half) and the reduction in `avs_scripts/avss/test.py`: per frame and class, IoU =
  inter / (union + 2.220446049250313e-16) and F from precision inter/pred and recall inter/label
  (NaN -> 0); both are summed over all frames and divided by the number of frames in which the class
  is predicted or labelled (`cls_count`); a class that never occurs gets 0. The reference's final
  figure is the mean over all `num_classes` classes, never-seen ones counting 0 (`classes="all"`,
  the default); `classes="appeared"` averages only classes that occurred (the running figure the
  reference prints per batch). Pixels labelled with a negative class are ignored in prediction and
  label alike, as the reference's `predict * (target > 0)` after its +1 shift does.
  "Without background" leaves out class `background` (0 in this project's class maps). Note the
  AVSBench script computes its `noBg` figure as `miou_pc[:-1]`, i.e. without the *last* class;
  `background=num_classes - 1` reproduces that figure exactly.

Outputs: `binary_miou` and `binary_fscore` return one float; `frame_iou` (N,) and
`frame_fscore_curves` (N, 255) return float64 tensors; `semantic_metrics` returns a plain dict
(documented on the function) so callers can add fields and serialize it as JSON.

Frames are grouped into videos by `video_index`, an (N,) integer tensor (any labels; frames with the
same label form one video, in any order); `None` makes all frames one video.

Differences from the reference are numerical only: pixel counts are exact integers and ratios are
taken in float64 (the reference divides in float32), so values agree to ~1e-7. Probabilities and
thresholds are compared in float32, as in the reference, so every pixel falls on the same side of
every threshold. Everything runs on CPU in blocks of frames (a few passes over each block while it
is in cache) instead of the reference's per-frame, per-threshold loop: a bincount over each pixel's
threshold rank gives every threshold's counts at once.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

BETA2 = 0.3  # AVSBench's F-measure weight of precision
N_THRESHOLDS = 255  # `pr_num` in Eval_Fmeasure
IOU_EPS = 1e-7  # mask_iou's eps
PR_EPS = 1e-20  # _eval_pr's guard against empty predictions
SEMANTIC_EPS = 2.220446049250313e-16  # _batch_miou_fscore's guard (numpy's float64 eps)
BLOCK_PIXELS = 1 << 19  # pixels per block of frames: small enough that a block's temporaries stay in cache (measured best of 2^17..2^21)

VideoIndex = torch.Tensor | Sequence[int] | None


def thresholds() -> torch.Tensor:
    """(255,) float32 F-measure thresholds exactly as the reference builds them."""
    return torch.linspace(0, 1 - 1e-10, N_THRESHOLDS)


def _check_maps(pred: torch.Tensor, gt: torch.Tensor, what: str) -> tuple[int, int]:
    """Shape checks shared by all metrics; returns (N, H*W)."""
    for name, t in (("pred", pred), ("gt", gt)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{what}: {name} must be a torch.Tensor, got {type(t).__name__}")
    if pred.dim() != 3 or pred.shape != gt.shape:
        raise ValueError(f"{what}: pred and gt must both be (N, H, W) with the same shape, got {tuple(pred.shape)} and {tuple(gt.shape)}")
    if pred.numel() == 0:
        raise ValueError(f"{what}: no pixels to evaluate (shape {tuple(pred.shape)})")
    return pred.shape[0], pred.shape[1] * pred.shape[2]


def _check_binary(pred: torch.Tensor, gt: torch.Tensor) -> tuple[int, int]:
    n, hw = _check_maps(pred, gt, "binary metrics")
    if not pred.is_floating_point() or pred.is_complex():
        raise ValueError(f"pred must hold float logits or probabilities, got dtype {pred.dtype}")
    return n, hw


def _blocks(n: int, hw: int) -> Iterator[slice]:
    step = max(1, BLOCK_PIXELS // hw)
    for start in range(0, n, step):
        yield slice(start, min(start + step, n))


def _binary_blocks(pred: torch.Tensor, gt: torch.Tensor, from_logits: bool) -> Iterator[tuple[slice, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Validated blocks of frames: (rows, probabilities (f, HW) float32, their bit patterns (f, HW)
    int32, ground truth (f, HW) int32 0/1).

    For probabilities in [0, 1] the float32 bit pattern read as an int32 orders like the value, so
    threshold tests become integer subtractions and shifts (cheaper than comparisons on CPU) with
    exactly the reference's float32 outcome."""
    n, hw = pred.shape[0], pred.shape[1] * pred.shape[2]
    pred, gt = pred.detach().cpu().reshape(n, hw), gt.detach().cpu().reshape(n, hw)
    for rows in _blocks(n, hw):
        p = pred[rows].float()
        if from_logits:
            p = torch.sigmoid(p)
        lo, hi = torch.aminmax(p)
        if not (lo >= 0 and hi <= 1):  # also catches NaN
            if from_logits:
                raise ValueError("pred contains NaN logits")
            raise ValueError(f"probabilities must lie in [0, 1], found values in [{float(lo)}, {float(hi)}] (logits? pass from_logits=True)")
        bits = p.view(torch.int32)
        if not from_logits:
            bits = bits & 0x7FFFFFFF  # -0.0 (sign bit set) orders as +0.0
        g = gt[rows]
        if g.dtype == torch.bool:
            g = g.view(torch.uint8).to(torch.int32)
        else:
            if g.is_floating_point() or g.is_complex():
                binary = bool(((g == 0) | (g == 1)).all())
            else:
                lo, hi = torch.aminmax(g)
                binary = bool(lo >= 0 and hi <= 1)
            if not binary:
                raise ValueError("gt must be a binary mask of 0/1 values (divide 0/255 PNG masks by 255 first)")
            g = g.to(torch.int32)
        yield rows, p, bits, g


def _float_bits(x: torch.Tensor | float) -> torch.Tensor:
    """float32 value(s) as their int32 bit patterns."""
    return torch.as_tensor(x, dtype=torch.float32).view(torch.int32)


def _check_threshold(threshold: float) -> float:
    threshold = float(threshold)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold applies to probabilities and must lie in [0, 1], got {threshold}")
    return threshold


def frame_iou(pred: torch.Tensor, gt: torch.Tensor, threshold: float = 0.5, from_logits: bool = True) -> torch.Tensor:
    """(N,) float64 per-frame IoU of `prob > threshold` (mask_iou, empty-ground-truth rule included).

    pred: (N, H, W) logits (or probabilities with from_logits=False); gt: (N, H, W) 0/1 or bool."""
    threshold = _check_threshold(threshold)
    n, hw = _check_binary(pred, gt)
    thr_bits = int(_float_bits(threshold))  # the reference compares in float32
    inter = torch.empty(n, dtype=torch.int64)
    n_pred = torch.empty(n, dtype=torch.int64)
    n_gt = torch.empty(n, dtype=torch.int64)
    for rows, _, bits, g in _binary_blocks(pred, gt, from_logits):
        above = thr_bits - bits  # (f, HW) negative exactly where p > threshold
        above >>= 31  # -1 (all bits set) where p > threshold, else 0
        n_pred[rows] = above.sum(1, dtype=torch.int32).neg()
        above &= g
        inter[rows] = above.sum(1, dtype=torch.int32)
        n_gt[rows] = g.sum(1, dtype=torch.int32)
    # |P∪G| = |P| + |G| - |P∩G|; with an empty G the frame scores |¬P∩¬G| / HW = (HW - |P|) / HW
    union = n_pred + n_gt - inter
    empty = n_gt == 0
    inter = torch.where(empty, hw - n_pred, inter).double()
    union = torch.where(empty, torch.full_like(union, hw), union).double()
    return inter / (union + IOU_EPS)


def _fscore_curves(pred: torch.Tensor, gt: torch.Tensor, from_logits: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 255) float64 F curves and (N,) ground-truth pixel counts."""
    th_bits = _float_bits(thresholds())  # (255,)
    n, _ = _check_binary(pred, gt)
    hist = torch.empty(n, N_THRESHOLDS + 1, 2, dtype=torch.int64)  # per frame: pixels by threshold rank and by gt
    for rows, p, bits, g in _binary_blocks(pred, gt, from_logits):
        f = p.shape[0]
        # rank = number of thresholds <= p: the pixel is positive for thresholds 0 .. rank-1. The
        # thresholds lie within 1e-5 of k / 254, so only the nearest one, m = round(254 p), can fall
        # on either side of p; one exact float32 comparison with it (as bits) settles the rank.
        m = (p * (N_THRESHOLDS - 1)).round_().to(torch.int32)  # (f, HW) in [0, 254]
        below = bits - th_bits.index_select(0, m.view(-1)).view_as(m)
        below >>= 31  # -1 where p < threshold m, else 0
        m += below
        m += (torch.arange(f, dtype=torch.int32) * (N_THRESHOLDS + 1) + 1)[:, None]  # rank, offset by frame
        m <<= 1
        m += g  # key = (frame, rank, gt) flattened
        hist[rows] = torch.bincount(m.view(-1), minlength=f * (N_THRESHOLDS + 1) * 2).view(f, N_THRESHOLDS + 1, 2)
    # pixels positive at threshold k are those of rank > k: a cumulative sum from the top rank down
    above = hist.flip(1).cumsum(1).flip(1)[:, 1:].double()  # (N, 255, 2)
    tp = above[..., 1]
    n_gt = hist[..., 1].sum(1)
    precision = tp / (above.sum(2) + PR_EPS)
    recall = tp / (n_gt[:, None].double() + PR_EPS)
    f_score = (1 + BETA2) * precision * recall / (BETA2 * precision + recall)
    return torch.nan_to_num(f_score, nan=0.0), n_gt


def frame_fscore_curves(pred: torch.Tensor, gt: torch.Tensor, from_logits: bool = True) -> torch.Tensor:
    """(N, 255) float64 per-frame F-measure at each of `thresholds()` (_eval_pr + Eval_Fmeasure's F).

    A frame with an empty ground truth gets a zero curve here; `binary_fscore` skips such frames."""
    return _fscore_curves(pred, gt, from_logits)[0]


def _video_ids(video_index: VideoIndex, n: int) -> torch.Tensor:
    """(N,) video ids in [0, V) from any integer labels."""
    if video_index is None:
        return torch.zeros(n, dtype=torch.long)
    vid = torch.as_tensor(video_index)
    if vid.dim() != 1 or vid.shape[0] != n:
        raise ValueError(f"video_index must be a 1-D sequence with one entry per frame ({n}), got shape {tuple(vid.shape)}")
    if vid.is_floating_point() or vid.is_complex() or vid.dtype == torch.bool:
        raise ValueError(f"video_index must hold integer video labels, got dtype {vid.dtype}")
    return torch.unique(vid.cpu(), return_inverse=True)[1]


def _video_means(values: torch.Tensor, vid: torch.Tensor, weight: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-video mean of per-frame values (N, ...) -> (V, ...), and the (V,) weight per video.

    A video whose frames all have weight 0 gets a zero mean (the reference's untouched zero curve)."""
    n_vid = int(vid.max()) + 1
    w = torch.ones(len(vid), dtype=torch.float64) if weight is None else weight.double()
    w_b = w.view(-1, *[1] * (values.dim() - 1))
    sums = torch.zeros((n_vid, *values.shape[1:]), dtype=torch.float64).index_add_(0, vid, values.double() * w_b)
    counts = torch.zeros(n_vid, dtype=torch.float64).index_add_(0, vid, w)
    return sums / counts.clamp_min(1).view(-1, *[1] * (values.dim() - 1)), counts


def binary_miou(pred: torch.Tensor, gt: torch.Tensor, threshold: float = 0.5, video_index: VideoIndex = None, from_logits: bool = True) -> float:
    """AVSBench mIoU: per-frame `frame_iou`, mean over each video's frames, then over videos.

    pred: (N, H, W) logits (probabilities with from_logits=False); gt: (N, H, W) 0/1 or bool;
    video_index: (N,) integer video label per frame (None = all frames are one video)."""
    vid = _video_ids(video_index, _check_binary(pred, gt)[0])
    per_video, _ = _video_means(frame_iou(pred, gt, threshold, from_logits), vid)
    return float(per_video.mean())


def binary_fscore(pred: torch.Tensor, gt: torch.Tensor, video_index: VideoIndex = None, from_logits: bool = True, empty_video: str = "zero") -> float:
    """AVSBench F-score (beta^2 = 0.3): per video, the max over thresholds of the F curve averaged over
    the frames with a non-empty ground truth; then the mean over videos.

    empty_video: "zero" (faithful) scores a video with only empty ground truths 0; "skip" leaves it
    out. Arguments as `binary_miou`."""
    if empty_video not in ("zero", "skip"):
        raise ValueError(f"empty_video must be 'zero' or 'skip', got {empty_video!r}")
    vid = _video_ids(video_index, _check_binary(pred, gt)[0])
    curves, n_gt = _fscore_curves(pred, gt, from_logits)
    per_video, counts = _video_means(curves, vid, weight=n_gt > 0)  # (V, 255): empty frames carry no weight
    best = per_video.max(1).values  # a video without a non-empty frame keeps a zero curve -> 0
    if empty_video == "skip":
        best = best[counts > 0]
        if best.numel() == 0:
            raise ValueError("every video has only empty ground truths: the F-score is undefined with empty_video='skip'")
    return float(best.mean())


def _semantic_counts(pred: torch.Tensor, gt: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(N, C) int64 per frame and class: intersection, predicted area, labelled area (ignored pixels left out)."""
    n, hw = _check_maps(pred, gt, "semantic metrics")
    for name, t in (("pred_class_map", pred), ("gt_class_map", gt)):
        if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
            raise ValueError(f"{name} must hold integer class indices (argmax over class scores), got dtype {t.dtype}")
    pred, gt = pred.detach().cpu().reshape(n, hw), gt.detach().cpu().reshape(n, hw)
    c, rows_c = num_classes, num_classes + 1  # label rows: 0 = ignored pixel, 1 + k = class k
    counts = torch.empty(3, n, c, dtype=torch.int64)
    for rows in _blocks(n, hw):
        p, g = pred[rows].long(), gt[rows].long()
        f = p.shape[0]
        p_lo, p_hi = torch.aminmax(p)
        g_lo, g_hi = torch.aminmax(g)
        if p_lo < 0 or p_hi >= c or g_hi >= c:
            raise ValueError(
                f"class indices must lie in [0, {c}) (negative ground truth = ignored); "
                f"found pred in [{int(p_lo)}, {int(p_hi)}], gt up to {int(g_hi)}"
            )
        label_row = (torch.arange(f) * rows_c + 1)[:, None]  # (f, 1) first label row of each frame
        key = g.clamp_min(-1).add_(label_row) if g_lo < 0 else g + label_row
        key *= c
        key += p  # key = (frame, label row, predicted class) flattened
        # per frame, label x prediction pixel counts, the ignored-pixel row dropped
        conf = torch.bincount(key.view(-1), minlength=f * rows_c * c).view(f, rows_c, c)[:, 1:]  # (f, C, C)
        counts[0, rows] = conf.diagonal(dim1=1, dim2=2)
        counts[1, rows] = conf.sum(1)
        counts[2, rows] = conf.sum(2)
    return counts[0], counts[1], counts[2]


def semantic_metrics(pred_class_map: torch.Tensor, gt_class_map: torch.Tensor, num_classes: int, classes: str = "all", background: int = 0) -> dict:
    """AVSS mIoU and F-score from (N, H, W) integer class maps (see the module docstring).

    gt values < 0 mark ignored pixels. classes: "all" (faithful: mean over all num_classes, unseen
    classes counting 0) or "appeared" (mean over classes predicted or labelled somewhere).
    Returns a dict: `miou`, `fscore` (all classes), `miou_nobg`, `fscore_nobg` (class `background`
    left out; NaN where no class is left to average), and for the classes that occurred
    `per_class_miou`, `per_class_fscore` ({class: value}) and `class_frames` ({class: frames in
    which it was predicted or labelled})."""
    if classes not in ("all", "appeared"):
        raise ValueError(f"classes must be 'all' or 'appeared', got {classes!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    if not 0 <= background < num_classes:
        raise ValueError(f"background must be a class index in [0, {num_classes}), got {background}")
    inter, a_pred, a_lab = (a.double() for a in _semantic_counts(pred_class_map, gt_class_map, num_classes))  # (N, C)
    union = a_pred + a_lab - inter
    iou = inter / (union + SEMANTIC_EPS)
    precision, recall = inter / a_pred, inter / a_lab
    f_score = torch.nan_to_num((1 + BETA2) * precision * recall / (BETA2 * precision + recall), nan=0.0)
    frames = (union > 0).sum(0)  # (C,) the reference's cls_count
    iou_pc = torch.nan_to_num(iou.sum(0) / frames, nan=0.0)
    f_pc = torch.nan_to_num(f_score.sum(0) / frames, nan=0.0)
    keep = torch.ones(num_classes, dtype=torch.bool) if classes == "all" else frames > 0
    no_bg = keep.clone()
    no_bg[background] = False

    def mean(values: torch.Tensor, sel: torch.Tensor) -> float:
        return float(values[sel].mean()) if bool(sel.any()) else float("nan")  # no class to average

    seen = [c for c in range(num_classes) if frames[c] > 0]
    return {
        "miou": mean(iou_pc, keep),
        "fscore": mean(f_pc, keep),
        "miou_nobg": mean(iou_pc, no_bg),
        "fscore_nobg": mean(f_pc, no_bg),
        "per_class_miou": {c: float(iou_pc[c]) for c in seen},
        "per_class_fscore": {c: float(f_pc[c]) for c in seen},
        "class_frames": {c: int(frames[c]) for c in seen},
    }
