"""AVSBench metrics: hand-computed cases, the reference's rules one by one, float32 ports of the
reference functions, and the benchmark's straightforward loop on random data."""
import importlib.util
from pathlib import Path

import pytest
import torch

from model.metrics import (
    binary_fscore,
    binary_miou,
    frame_fscore_curves,
    frame_iou,
    semantic_metrics,
    thresholds,
)

ROOT = Path(__file__).resolve().parents[2]


def ref_mask_iou(prob, gt, threshold):
    """AVSBench utility.mask_iou on one video (its frames as the batch), probabilities given."""
    n, hw = prob.shape[0], prob.shape[-1] * prob.shape[-2]
    no_obj = gt.sum(2).sum(1) == 0
    p = (prob > threshold).int()
    inter = (p * gt).sum(2).sum(1).float()
    union = torch.max(p, gt).sum(2).sum(1).float()
    inter_no = ((1 - gt) * (1 - p)).sum(2).sum(1).float()
    inter[no_obj] = inter_no[no_obj]
    union[no_obj] = hw
    return float(torch.sum(inter / (union + 1e-7)) / n)


def ref_fmeasure(prob, gt, num=255):
    """AVSBench utility.Eval_Fmeasure + _eval_pr on one video, probabilities given."""
    avg_f, img_num, score = 0.0, 0, torch.zeros(num)
    th = torch.linspace(0, 1 - 1e-10, num)
    for i in range(prob.shape[0]):
        if torch.mean(gt[i].float()) == 0.0:
            continue
        prec, rec = torch.zeros(num), torch.zeros(num)
        for t in range(num):
            y = (prob[i] >= th[t]).float()
            tp = (y * gt[i]).sum()
            prec[t], rec[t] = tp / (y.sum() + 1e-20), tp / (gt[i].sum() + 1e-20)
        f = (1 + 0.3) * prec * rec / (0.3 * prec + rec)
        f[torch.isnan(f)] = 0
        avg_f += f
        img_num += 1
        score = avg_f / img_num
    return float(score.max())


def ref_avss(pred, gt, nclass):
    """AVSBench compute_color_metrics._batch_miou_fscore + avss/test.py's reduction (class maps given):
    mIoU, F, and the script's noBg figures (`[:-1]`: without the last class)."""
    predict, target = pred.float() + 1, gt.float() + 1
    predict = predict * (target > 0).float()
    inter_map = predict * (predict == target).float()
    ious, fs, cnt = torch.zeros(nclass), torch.zeros(nclass), torch.zeros(nclass)
    for i in range(target.shape[0]):
        a_i = torch.histc(inter_map[i], bins=nclass, min=1, max=nclass)
        a_p = torch.histc(predict[i], bins=nclass, min=1, max=nclass)
        a_l = torch.histc(target[i], bins=nclass, min=1, max=nclass)
        a_u = a_p + a_l - a_i
        ious += a_i / (2.220446049250313e-16 + a_u)
        cnt[torch.nonzero(a_u).squeeze(-1)] += 1
        p, r = a_i / a_p, a_i / a_l
        f = 1.3 * p * r / (0.3 * p + r)
        f[torch.isnan(f)] = 0
        fs += f
    miou_pc, f_pc = ious / cnt, fs / cnt
    miou_pc[torch.isnan(miou_pc)] = 0
    f_pc[torch.isnan(f_pc)] = 0
    return float(miou_pc.mean()), float(f_pc.mean()), float(miou_pc[:-1].mean()), float(f_pc[:-1].mean())


def bench_module():
    spec = importlib.util.spec_from_file_location("bench_metrics", ROOT / "bench" / "bench_metrics.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- binary mIoU -------------------------------------------------------------------------------


def test_iou_hand_computed_with_empty_ground_truth_rule():
    gt = torch.tensor([[[1, 1], [0, 0]], [[0, 0], [0, 0]]])
    prob = torch.tensor([[[0.9, 0.2], [0.8, 0.1]], [[0.9, 0.1], [0.1, 0.1]]])
    # frame 0: P = {(0,0), (1,0)}, G = {(0,0), (0,1)}: 1 / 3
    # frame 1: empty G, so the share of pixels correctly left empty: 3 of 4
    assert frame_iou(prob, gt, 0.5, from_logits=False).tolist() == pytest.approx([1 / 3, 3 / 4], abs=1e-6)
    assert binary_miou(prob, gt, 0.5, from_logits=False) == pytest.approx((1 / 3 + 3 / 4) / 2, abs=1e-6)
    # logits give the same result through the sigmoid
    assert binary_miou(torch.logit(prob.double()).float(), gt, 0.5) == pytest.approx((1 / 3 + 3 / 4) / 2, abs=1e-6)


def test_iou_threshold_parameter_and_strict_comparison():
    gt = torch.tensor([[[1, 1], [0, 0]]])
    prob = torch.tensor([[[0.9, 0.4], [0.8, 0.1]]])
    # 0.5: P = {0.9, 0.8} -> 1/3; 0.85: P = {0.9} -> 1/2; 0.3: P = {0.9, 0.4, 0.8} -> 2/3
    for threshold, expected in ((0.5, 1 / 3), (0.85, 1 / 2), (0.3, 2 / 3)):
        assert float(frame_iou(prob, gt, threshold, from_logits=False)[0]) == pytest.approx(expected, abs=1e-6)
    # `prob > threshold` is strict and in float32: a pixel at exactly 0.4 is not predicted at 0.4
    assert float(frame_iou(prob, gt, 0.4, from_logits=False)[0]) == pytest.approx(1 / 3, abs=1e-6)


def test_miou_averages_per_video_first():
    gt = torch.tensor([[[1, 1], [0, 0]], [[1, 0], [0, 0]], [[0, 0], [0, 0]]])
    prob = torch.tensor([[[0.9, 0.2], [0.8, 0.1]], [[0.9, 0.1], [0.1, 0.1]], [[0.9, 0.1], [0.1, 0.1]]])
    # frame IoUs 1/3, 1, 3/4; video "a" = frame 0, video "b" = frames 1 and 2 (labels need not be 0..V-1)
    video = torch.tensor([7, 3, 3])
    # (1/3 + (1 + 3/4) / 2) / 2 = 29/48, not the frame mean 25/36
    assert binary_miou(prob, gt, 0.5, video, from_logits=False) == pytest.approx(29 / 48, abs=1e-6)
    assert binary_miou(prob, gt, 0.5, from_logits=False) == pytest.approx(25 / 36, abs=1e-6)  # None: one video


# --- binary F-score ----------------------------------------------------------------------------

# frame A: |G| = 2. Pixels >= t by threshold range, with F = 1.3 P R / (0.3 P + R):
#   t = 0: all 9, TP 2 -> P 2/9, R 1 -> F 2.6/9.6 ; (0, .1]: 6 px -> P 1/3, R 1 -> F 13/33
#   (.1, .3]: 3 px -> P 2/3, R 1 -> F 13/18 ; (.3, .6]: {.9, .6} -> P 1/2, R 1/2 -> F 1/2
#   (.6, .9]: {.9} -> P 1, R 1/2 -> F 13/16 ; above .9: nothing -> 0/0 -> 0.   max = 13/16
GT_A = [[1, 1, 0], [0, 0, 0], [0, 0, 0]]
PROB_A = [[0.9, 0.3, 0.6], [0.1, 0.1, 0.1], [0.0, 0.0, 0.0]]
# frame B: |G| = 1. t = 0: P 1/9 -> F 1.3/9.3 ; (0, .2]: {.5, .2} -> P 1/2, R 1 -> F 13/23 ; above .2: 0
GT_B = [[0, 0, 0], [0, 0, 0], [0, 0, 1]]
PROB_B = [[0.5, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.2]]
EMPTY = [[0, 0, 0], [0, 0, 0], [0, 0, 0]]


def test_fscore_curve_hand_computed():
    curve = frame_fscore_curves(torch.tensor([PROB_A]), torch.tensor([GT_A]), from_logits=False)[0]
    th = thresholds().double()
    expected = torch.tensor([
        2.6 / 9.6 if t == 0 else 13 / 33 if t <= 0.1 else 13 / 18 if t <= 0.3 else 0.5 if t <= 0.6 else 13 / 16 if t <= 0.9 else 0.0
        for t in th.tolist()
    ], dtype=torch.float64)
    assert torch.allclose(curve, expected, atol=1e-6)
    assert binary_fscore(torch.tensor([PROB_A]), torch.tensor([GT_A]), from_logits=False) == pytest.approx(13 / 16, abs=1e-6)


def test_fscore_averages_curves_over_frames_then_takes_max_and_skips_empty_frames():
    prob = torch.tensor([PROB_A, PROB_B, PROB_A])
    gt = torch.tensor([GT_A, GT_B, EMPTY])
    # curves averaged per threshold: the best range is (.1, .2] with (13/18 + 13/23) / 2 = 533/828;
    # the max of each frame's own curve would give (13/16 + 13/23) / 2 instead. Frame 2 (empty) is skipped.
    assert binary_fscore(prob, gt, from_logits=False) == pytest.approx(533 / 828, abs=1e-6)
    assert binary_fscore(prob[:2], gt[:2], from_logits=False) == pytest.approx(533 / 828, abs=1e-6)


def test_fscore_per_video_and_empty_only_video():
    prob = torch.tensor([PROB_A, PROB_B, PROB_A, PROB_B])
    gt = torch.tensor([GT_A, GT_B, EMPTY, EMPTY])
    # videos 0 = {A}, 1 = {B}, 2 = {empty, empty}: 13/16, 13/23 and a video without any object
    video = torch.tensor([0, 1, 2, 2])
    assert binary_fscore(prob, gt, video, from_logits=False) == pytest.approx((13 / 16 + 13 / 23 + 0) / 3, abs=1e-6)
    assert binary_fscore(prob, gt, video, from_logits=False, empty_video="skip") == pytest.approx((13 / 16 + 13 / 23) / 2, abs=1e-6)


def test_fscore_thresholds_exact_at_boundaries():
    th = thresholds()
    assert th.dtype == torch.float32 and len(th) == 255 and th[0] == 0 and th[-1] == 1.0
    # pixels exactly on every threshold and one float32 step below it: `prob >= t` must split them as the reference does
    below = torch.nextafter(th, torch.tensor(-1.0)).clamp_min(0)
    prob = torch.cat([th, below, torch.tensor([0.5, 1.0, 0.0])])[None, None, :]  # (1, 1, 513)
    gt = (torch.arange(prob.shape[-1]) % 3 == 0).long()[None, None, :]
    curve = frame_fscore_curves(prob, gt, from_logits=False)[0]
    p, g = prob.flatten(), gt.flatten().float()
    for k, t in enumerate(th):
        y = (p >= t).float()
        tp = float((y * g).sum())
        precision, recall = tp / (float(y.sum()) + 1e-20), tp / (float(g.sum()) + 1e-20)
        expected = 0.0 if precision + recall == 0 else 1.3 * precision * recall / (0.3 * precision + recall)
        assert float(curve[k]) == pytest.approx(expected, abs=1e-12), k


# --- against the reference and the benchmark's loop on random data -----------------------------


def random_videos(seed: int, n: int = 12, size: int = 24):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, size, size, generator=g) * 3
    logits[0, 0, :4] = 30.0  # saturated: sigmoid gives exactly 1.0, positive at the last threshold
    gt = (torch.rand(n, size, size, generator=g) > 0.7).long()
    gt[4] = 0  # an empty ground truth inside a video
    gt[9:12] = 0  # a video with only empty ground truths
    video = torch.tensor([0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 3, 3])
    return logits, gt, video


def test_agrees_with_reference_ports_on_random_videos():
    logits, gt, video = random_videos(0)
    prob = torch.sigmoid(logits)
    for th in (0.4, 0.5):
        ref = sum(ref_mask_iou(prob[video == v], gt[video == v], th) for v in range(4)) / 4
        assert binary_miou(logits, gt, th, video) == pytest.approx(ref, abs=1e-6)
    ref_f = sum(ref_fmeasure(prob[video == v], gt[video == v]) for v in range(4)) / 4
    assert binary_fscore(logits, gt, video) == pytest.approx(ref_f, abs=1e-6)


def test_agrees_with_benchmark_loop_on_random_videos():
    bench = bench_module()
    for seed in (1, 2):
        logits, gt, video = random_videos(seed)
        for th in (0.4, 0.5):
            loop = bench.loop_binary(logits, gt, video, th)
            assert binary_miou(logits, gt, th, video) == pytest.approx(loop["miou"], abs=1e-9)
            assert binary_fscore(logits, gt, video) == pytest.approx(loop["fscore"], abs=1e-9)
    d = bench.data(videos=3, frames=2, size=16, num_classes=9, seed=3)
    got = semantic_metrics(d["predicted"], d["classes"], 9)
    for key, value in bench.loop_semantic(d["predicted"], d["classes"], 9).items():
        assert got[key] == pytest.approx(value, abs=1e-9), key


def test_dtypes_and_block_sizes_do_not_change_results(monkeypatch):
    from model import metrics

    logits, gt, video = random_videos(4)
    classes = (gt * torch.arange(12)[:, None, None]) % 5
    predicted = (classes + (logits > 2)) % 5
    binary = (binary_miou(logits, gt, 0.4, video), binary_fscore(logits, gt, video))
    semantic = semantic_metrics(predicted, classes, 5)
    for g in (gt.bool(), gt.float(), gt.to(torch.uint8)):
        assert (binary_miou(logits, g, 0.4, video), binary_fscore(logits, g, video)) == binary
    assert semantic_metrics(predicted.to(torch.uint8), classes.int(), 5) == semantic
    for block in (3000, 1):  # blocks of 5, 5 and 2 frames; blocks of one frame
        monkeypatch.setattr(metrics, "BLOCK_PIXELS", block)
        assert (binary_miou(logits, gt, 0.4, video), binary_fscore(logits, gt, video)) == binary
        assert semantic_metrics(predicted, classes, 5) == semantic


# --- AVSS semantic -----------------------------------------------------------------------------


def test_semantic_hand_computed_with_and_without_background():
    gt = torch.tensor([[[0, 1], [1, 2]], [[0, 0], [0, 0]]])
    pred = torch.tensor([[[0, 1], [2, 2]], [[0, 0], [0, 1]]])
    # frame 0: class 0 IoU 1, F 1; class 1 IoU 1/2, F (P 1, R 1/2) 13/16; class 2 IoU 1/2, F (P 1/2, R 1) 13/23
    # frame 1: class 0 IoU 3/4, F (P 1, R 3/4) 13/14; class 1 predicted only: IoU 0, F 0 (counted); class 2 absent
    # per class: 0 -> IoU 7/8, F 27/28; 1 -> IoU 1/4, F 13/32; 2 -> IoU 1/2, F 13/23; 3 never occurs -> 0
    out = semantic_metrics(pred, gt, num_classes=4)
    assert out["per_class_miou"] == pytest.approx({0: 7 / 8, 1: 1 / 4, 2: 1 / 2})
    assert out["per_class_fscore"] == pytest.approx({0: 27 / 28, 1: 13 / 32, 2: 13 / 23})
    assert out["class_frames"] == {0: 2, 1: 2, 2: 1}
    assert out["miou"] == pytest.approx((7 / 8 + 1 / 4 + 1 / 2) / 4)
    assert out["fscore"] == pytest.approx((27 / 28 + 13 / 32 + 13 / 23) / 4)
    assert out["miou_nobg"] == pytest.approx((1 / 4 + 1 / 2) / 3)
    assert out["fscore_nobg"] == pytest.approx((13 / 32 + 13 / 23) / 3)
    appeared = semantic_metrics(pred, gt, num_classes=4, classes="appeared")
    assert appeared["miou"] == pytest.approx((7 / 8 + 1 / 4 + 1 / 2) / 3)
    assert appeared["miou_nobg"] == pytest.approx((1 / 4 + 1 / 2) / 2)
    assert appeared["fscore_nobg"] == pytest.approx((13 / 32 + 13 / 23) / 2)


def test_semantic_ignores_negative_labels():
    gt = torch.tensor([[[-1, 1], [1, 0]]])
    pred = torch.tensor([[[2, 1], [1, 0]]])
    # the ignored pixel's prediction (class 2) counts nowhere: every class that occurs is perfect
    out = semantic_metrics(pred, gt, num_classes=3, classes="appeared")
    assert out["miou"] == pytest.approx(1.0) and out["fscore"] == pytest.approx(1.0)
    assert 2 not in out["class_frames"]


def test_semantic_agrees_with_reference_port():
    g = torch.Generator().manual_seed(1)
    gt = torch.randint(0, 5, (6, 16, 16), generator=g)
    gt[0, :2] = -1  # ignored pixels
    pred = torch.where(torch.rand(6, 16, 16, generator=g) > 0.3, gt.clamp_min(0), torch.randint(0, 5, (6, 16, 16), generator=g))
    ref_miou, ref_f, ref_miou_last, ref_f_last = ref_avss(pred, gt, 7)
    got = semantic_metrics(pred, gt, 7)
    assert got["miou"] == pytest.approx(ref_miou, abs=1e-6)
    assert got["fscore"] == pytest.approx(ref_f, abs=1e-6)
    # the reference script's "noBg" leaves out the last class; background=num_classes-1 reproduces it
    quirk = semantic_metrics(pred, gt, 7, background=6)
    assert quirk["miou_nobg"] == pytest.approx(ref_miou_last, abs=1e-6)
    assert quirk["fscore_nobg"] == pytest.approx(ref_f_last, abs=1e-6)


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: binary_miou(torch.zeros(2, 3, 3), torch.zeros(2, 3, 4)), "same shape"),
        (lambda: binary_miou(torch.zeros(3, 3), torch.zeros(3, 3)), r"\(N, H, W\)"),
        (lambda: binary_miou(torch.zeros(0, 3, 3), torch.zeros(0, 3, 3)), "no pixels"),
        (lambda: binary_miou(torch.zeros(1, 2, 2), torch.full((1, 2, 2), 255)), "binary mask"),
        (lambda: binary_fscore(torch.zeros(1, 2, 2), torch.full((1, 2, 2), 0.5)), "binary mask"),
        (lambda: binary_miou(torch.full((1, 2, 2), 3.0), torch.zeros(1, 2, 2), from_logits=False), "from_logits=True"),
        (lambda: binary_fscore(torch.full((1, 2, 2), float("nan")), torch.zeros(1, 2, 2)), "NaN"),
        (lambda: binary_miou(torch.zeros(1, 2, 2, dtype=torch.long), torch.zeros(1, 2, 2)), "float logits"),
        (lambda: binary_miou(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2), threshold=1.5), "threshold"),
        (lambda: binary_miou(torch.zeros(2, 2, 2), torch.zeros(2, 2, 2), video_index=[0]), "one entry per frame"),
        (lambda: binary_fscore(torch.zeros(2, 2, 2), torch.zeros(2, 2, 2), video_index=torch.tensor([0.0, 1.0])), "integer"),
        (lambda: binary_fscore(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2), empty_video="drop"), "empty_video"),
        (lambda: binary_fscore(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2), empty_video="skip"), "only empty"),
        (lambda: semantic_metrics(torch.full((1, 2, 2), 9), torch.zeros(1, 2, 2, dtype=torch.long), 4), "class indices"),
        (lambda: semantic_metrics(torch.zeros(1, 2, 2, dtype=torch.long), torch.full((1, 2, 2), 4), 4), "class indices"),
        (lambda: semantic_metrics(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2), 4), "integer class"),
        (lambda: semantic_metrics(torch.zeros(1, 2, 2, dtype=torch.long), torch.zeros(1, 2, 2, dtype=torch.long), 4, classes="seen"), "classes"),
        (lambda: semantic_metrics(torch.zeros(1, 2, 2, dtype=torch.long), torch.zeros(1, 2, 2, dtype=torch.long), 4, background=4), "background"),
    ],
)
def test_bad_inputs_raise_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_non_tensor_input_raises_type_error():
    with pytest.raises(TypeError, match="torch.Tensor"):
        binary_miou([[[0.0]]], torch.zeros(1, 1, 1))
