"""Metrics against hand-computed cases and a line-by-line port of the AVSBench reference loops."""
import pytest
import torch

from model.metrics import binary_fscore, binary_miou, frame_iou, semantic_metrics, thresholds


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
    """AVSBench utility.Eval_Fmeasure on one video, probabilities given."""
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
        f[f != f] = 0
        avg_f += f
        img_num += 1
        score = avg_f / img_num
    return float(score.max())


def test_iou_hand_computed():
    gt = torch.tensor([[[1, 1], [0, 0]], [[0, 0], [0, 0]]])
    prob = torch.tensor([[[0.9, 0.2], [0.8, 0.1]], [[0.9, 0.1], [0.1, 0.1]]])
    iou = frame_iou(prob, gt, 0.5, from_logits=False)
    # frame 0: P = {(0,0), (1,0)}, G = {(0,0), (0,1)} -> 1 / 3; frame 1: empty GT, 3 of 4 pixels left empty
    assert iou.tolist() == pytest.approx([1 / 3, 3 / 4], abs=1e-6)
    assert binary_miou(prob, gt, 0.5, from_logits=False) == pytest.approx((1 / 3 + 3 / 4) / 2, abs=1e-6)
    # the threshold is a parameter: at 0.85 frame 0 predicts only (0,0) -> IoU 1/2
    assert frame_iou(prob, gt, 0.85, from_logits=False)[0] == pytest.approx(0.5, abs=1e-6)


def test_miou_averages_per_video_first():
    gt = torch.ones(3, 2, 2, dtype=torch.long)
    prob = torch.stack([torch.ones(2, 2), torch.zeros(2, 2), torch.zeros(2, 2)])
    # video 0 = frame 0 (IoU 1); video 1 = frames 1, 2 (IoU 0) -> 0.5, not the frame mean 1/3
    assert binary_miou(prob, gt, 0.5, video_index=torch.tensor([0, 1, 1]), from_logits=False) == pytest.approx(0.5, abs=1e-6)


def test_fscore_hand_computed_and_empty_rules():
    gt = torch.tensor([[[1, 0], [0, 0]]])
    prob = torch.tensor([[[0.9, 0.6], [0.1, 0.1]]])
    # t <= 0.1: P = 1/4, R = 1; 0.1 < t <= 0.6: P = 1/2, R = 1; 0.6 < t <= 0.9: P = R = 1 -> F = 1
    assert binary_fscore(prob, gt, from_logits=False) == pytest.approx(1.0, abs=1e-6)
    empty = torch.zeros(1, 2, 2, dtype=torch.long)
    both_gt = torch.cat([gt, empty])
    both_prob = torch.cat([torch.tensor([[[0.9, 0.6], [0.1, 0.1]]]), torch.ones(1, 2, 2)])
    # the empty frame is skipped inside its video
    assert binary_fscore(both_prob, both_gt, video_index=torch.tensor([0, 0]), from_logits=False) == pytest.approx(1.0)
    # a video of only empty frames counts 0 (faithful) or is skipped
    vids = torch.tensor([0, 1])
    assert binary_fscore(both_prob, both_gt, video_index=vids, from_logits=False) == pytest.approx(0.5)
    assert binary_fscore(both_prob, both_gt, video_index=vids, from_logits=False, empty_video="skip") == pytest.approx(1.0)


def test_thresholds_match_reference_float32():
    th = thresholds()
    assert th.dtype == torch.float32 and len(th) == 255 and th[-1] == 1.0


def test_agrees_with_reference_loops_on_random_videos():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(12, 24, 24, generator=g) * 3
    gt = (torch.rand(12, 24, 24, generator=g) > 0.7).long()
    gt[4] = 0  # an empty ground truth inside a video
    gt[9:12] = 0  # a video with only empty ground truths
    video = torch.tensor([0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 3, 3])
    prob = torch.sigmoid(logits)
    for th in (0.4, 0.5):
        ref = sum(ref_mask_iou(prob[video == v], gt[video == v], th) for v in range(4)) / 4
        assert binary_miou(logits, gt, th, video) == pytest.approx(ref, abs=1e-6)
    ref_f = sum(ref_fmeasure(prob[video == v], gt[video == v]) for v in range(4)) / 4
    assert binary_fscore(logits, gt, video) == pytest.approx(ref_f, abs=1e-6)


def ref_avss(pred, gt, nclass):
    """AVSBench avsbench_eval._batch_miou_fscore + the test loop's reduction (class maps given)."""
    predict, target = pred.float() + 1, gt.float() + 1
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
        f[f != f] = 0
        fs += f
    miou_pc, f_pc = ious / cnt, fs / cnt
    miou_pc[torch.isnan(miou_pc)] = 0
    f_pc[torch.isnan(f_pc)] = 0
    return float(miou_pc.mean()), float(f_pc.mean()), float(miou_pc[1:].mean())


def test_semantic_hand_computed_and_reference():
    gt = torch.tensor([[[0, 1], [1, 2]]])
    pred = torch.tensor([[[0, 1], [2, 2]]])
    out = semantic_metrics(pred, gt, num_classes=4)
    # class 0: 1/1; class 1: 1/2; class 2: 1/2; class 3 never seen -> 0 in the "all" mean
    assert out["per_class_miou"] == pytest.approx({0: 1.0, 1: 0.5, 2: 0.5})
    assert out["miou"] == pytest.approx(2.0 / 4)
    assert out["miou_nobg"] == pytest.approx(1.0 / 3)
    assert semantic_metrics(pred, gt, 4, classes="appeared")["miou"] == pytest.approx(2.0 / 3)
    g = torch.Generator().manual_seed(1)
    gt = torch.randint(0, 5, (6, 16, 16), generator=g)
    pred = torch.where(torch.rand(6, 16, 16, generator=g) > 0.3, gt, torch.randint(0, 5, (6, 16, 16), generator=g))
    ref_miou, ref_f, ref_nobg = ref_avss(pred, gt, 7)
    got = semantic_metrics(pred, gt, 7)
    assert got["miou"] == pytest.approx(ref_miou, abs=1e-6)
    assert got["fscore"] == pytest.approx(ref_f, abs=1e-6)
    assert got["miou_nobg"] == pytest.approx(ref_nobg, abs=1e-6)


def test_bad_inputs():
    with pytest.raises(ValueError, match="empty_video"):
        binary_fscore(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2), empty_video="drop")
    with pytest.raises(ValueError, match="class indices"):
        semantic_metrics(torch.full((1, 2, 2), 9), torch.zeros(1, 2, 2), 4)
