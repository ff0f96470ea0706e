"""The one assembly of binary AVSBench scores: videos named by any key, averaged per video first."""
import torch

from model.metrics import binary_fscore, binary_miou
from pipeline.evaluation.segmentation import binary_metrics, binary_scores
from pipeline.model_io.inference import ConditionOutputs


def test_binary_scores_group_frames_by_video_name():
    g = torch.Generator().manual_seed(0)
    probs, gts = torch.rand(6, 8, 8, generator=g), torch.rand(6, 8, 8, generator=g) > 0.5
    videos = [("v1s", "b"), ("v1s", "b"), ("v1s", "a"), ("v2", "c"), ("v1s", "a"), ("v2", "c")]
    out = binary_scores(probs, gts, videos, threshold=0.4)
    index = torch.tensor([0, 0, 1, 2, 1, 2])
    assert out == {
        "miou": binary_miou(probs, gts, threshold=0.4, video_index=index, from_logits=False),
        "fscore": binary_fscore(probs, gts, video_index=index, from_logits=False),
        "frames": 6, "videos": 3,
    }


def test_binary_metrics_split_by_subset_and_skip_frames_without_masks():
    g = torch.Generator().manual_seed(1)
    res = ConditionOutputs()
    for i, (subset, uid, has_mask) in enumerate([("v1s", "a", True), ("v1s", "a", False), ("v1m", "b", True), ("v1m", "b", True)]):
        res.scores.append(torch.rand(1, 8, 8, generator=g))
        res.gts.append((torch.rand(8, 8, generator=g) > 0.5).long())
        res.has_mask.append(has_mask)
        res.keys.append((subset, uid, i))
    out = binary_metrics(res, threshold=0.4)
    assert out["frames"] == 3 and set(out["by_subset"]) == {"v1m", "v1s"}
    v1m = binary_scores(torch.stack([res.scores[i][0] for i in (2, 3)]), torch.stack([res.gts[i] > 0 for i in (2, 3)]), [("v1m", "b")] * 2, 0.4)
    assert out["by_subset"]["v1m"] == {k: v1m[k] for k in ("miou", "fscore", "frames")}
