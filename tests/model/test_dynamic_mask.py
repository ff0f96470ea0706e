"""Dynamic mask: xi = mean over heads and keys of q.k / sqrt(d_head); keep a cue where xi > 0."""
import math

import pytest
import torch

from model.dynamic_mask import ScoreCentre, dynamic_cue_mask


def test_hand_built_scores_and_mask():
    # 2 heads, d_head 2, 2 latent keys both pointing along +x in every head.
    k = torch.tensor([[1.0, 0.0], [1.0, 0.0]]).expand(1, 2, 2, 2)  # (B, h, N_L, d_head)
    q = torch.tensor(
        [
            [[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [3.0, 0.0], [2.0, 0.0]],  # head 0
            [[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [3.0, 0.0], [-1.0, 0.0]],  # head 1
        ]
    )[None]  # (1, 2, 5, 2): cues along +x, along -x, orthogonal, +x but padded, heads disagree
    valid = torch.tensor([[True, True, True, False, True]])
    scores, masked = dynamic_cue_mask(q, k, valid)
    s = 1 / math.sqrt(2)
    torch.testing.assert_close(scores, torch.tensor([[s, -s, 0.0, 3 * s, 0.5 * s]]))
    # kept: positive score and valid; xi == 0 is masked (the rule is xi > 0); padding always masked
    assert masked.tolist() == [[False, True, True, True, False]]


def test_scores_equal_the_brute_force_mean_of_logits():
    torch.manual_seed(0)
    q, k = torch.randn(3, 4, 5, 8), torch.randn(3, 4, 6, 8)
    valid = torch.ones(3, 5, dtype=torch.bool)
    scores, masked = dynamic_cue_mask(q, k, valid)
    expected = (q @ k.transpose(-2, -1) / math.sqrt(8)).mean(dim=(1, 3))
    torch.testing.assert_close(scores, expected)
    assert torch.equal(masked, expected <= 0)


def test_disabled_masks_only_padding():
    torch.manual_seed(0)
    q, k = torch.randn(2, 2, 4, 4), torch.randn(2, 2, 3, 4)
    valid = torch.tensor([[True, True, False, False], [True, True, True, True]])
    scores, masked = dynamic_cue_mask(q, k, valid, enabled=False)
    assert torch.equal(masked, ~valid)
    assert (scores <= 0).any()  # there were cues the enabled mask would have dropped
    assert not torch.equal(dynamic_cue_mask(q, k, valid)[1], masked)


def test_bad_inputs_raise():
    q, k = torch.randn(1, 2, 3, 4), torch.randn(1, 2, 5, 4)
    with pytest.raises(ValueError, match="disagree"):
        dynamic_cue_mask(q, torch.randn(1, 2, 5, 3), torch.ones(1, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="bool tensor of shape"):
        dynamic_cue_mask(q, k, torch.ones(1, 3))
    with pytest.raises(ValueError, match="bool tensor of shape"):
        dynamic_cue_mask(q, k, torch.ones(1, 4, dtype=torch.bool))


def test_a_centre_moves_the_threshold_to_the_mean_score():
    torch.manual_seed(0)
    q, k = torch.randn(4, 2, 3, 8), torch.randn(4, 2, 5, 8)
    valid = torch.tensor([[True, True, True]] * 3 + [[True, False, False]])
    raw, _ = dynamic_cue_mask(q, k, valid)
    centre = ScoreCentre().train()
    scores, masked = dynamic_cue_mask(q, k, valid, centre=centre)
    torch.testing.assert_close(scores, raw - raw[valid].mean())
    assert torch.equal(masked, ~valid | (raw <= raw[valid].mean()))
    assert 0 < int((masked & valid).sum()) < int(valid.sum())


def test_score_centre_uses_the_batch_mean_in_training_and_its_running_mean_in_evaluation():
    centre = ScoreCentre(momentum=0.5)
    valid = torch.tensor([[True, True, False]])
    centre.eval()
    torch.testing.assert_close(centre(torch.tensor([[1.0, 2.0, 3.0]]), valid), torch.tensor([[1.0, 2.0, 3.0]]))  # nothing seen: zero rule
    centre.train()
    scores = torch.tensor([[2.0, 4.0, 100.0]], requires_grad=True)
    centred = centre(scores, valid)  # padding does not count in the mean
    torch.testing.assert_close(centred, torch.tensor([[-1.0, 1.0, 97.0]]))
    # a shift common to the valid cues gets no gradient: the cues' gradients sum to zero
    centred[0, :2].sum().backward()
    torch.testing.assert_close(scores.grad[0, :2].sum(), torch.tensor(0.0))
    assert float(centre.running_mean()) == pytest.approx(3.0)  # bias-corrected: the first mean itself
    centre(torch.tensor([[5.0, 5.0, -100.0]]), valid)
    assert float(centre.running_mean()) == pytest.approx((0.5 * 0.5 * 3 + 0.5 * 5) / 0.75)
    centre(torch.tensor([[1.0, 1.0, 1.0]]), torch.zeros(1, 3, dtype=torch.bool))  # no valid cue: no step
    assert int(centre.steps) == 2
    centre.eval()
    torch.testing.assert_close(centre(torch.tensor([[5.0, 6.0, 0.0]]), valid),
                               torch.tensor([[5.0, 6.0, 0.0]]) - centre.running_mean())
