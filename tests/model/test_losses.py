"""Losses: target builders, the weighted Mask2Former set loss, and the latent-audio InfoNCE."""
import math

import pytest
import torch
from transformers import Mask2FormerConfig
from transformers.models.mask2former.modeling_mask2former import Mask2FormerLoss

from model.config import TeSOConfig
from model.losses import SetCriterion, binary_targets, infonce_latent_loss, semantic_targets

N_Q = 6


def criterion(**kw) -> SetCriterion:
    return SetCriterion(Mask2FormerConfig(num_labels=150), TeSOConfig(train_num_points=256, **kw))


def predictions(num_labels: int = 1, layers: int = 1):
    torch.manual_seed(0)
    masks = [torch.randn(2, N_Q, 16, 16, requires_grad=True) for _ in range(layers)]
    classes = [torch.randn(2, N_Q, num_labels + 1, requires_grad=True) for _ in range(layers)]
    return masks, classes


def test_binary_targets():
    masks = torch.zeros(2, 8, 8)
    masks[0, 2:5, 2:5] = 1.0
    mask_labels, class_labels = binary_targets(masks)
    assert mask_labels[0].shape == (1, 8, 8) and torch.equal(mask_labels[0][0], masks[0])
    assert class_labels[0].tolist() == [0]
    assert mask_labels[1].shape == (0, 8, 8) and class_labels[1].shape == (0,)
    with pytest.raises(ValueError, match=r"\(B, H, W\)"):
        binary_targets(torch.zeros(8, 8))


def test_semantic_targets():
    maps = torch.tensor([[[0, 0, 3], [3, 255, 2]]])  # (1, 2, 3)
    mask_labels, class_labels = semantic_targets(maps, num_labels=4, ignore_index=255)
    assert class_labels[0].tolist() == [0, 2, 3]
    assert mask_labels[0].sum().item() == 5  # the ignored pixel is in no mask
    assert mask_labels[0][2].tolist() == [[0, 0, 1], [1, 0, 0]]
    with pytest.raises(ValueError, match=r"lie in \[0, 4\)"):
        semantic_targets(maps, num_labels=4)  # 255 not ignored
    with pytest.raises(ValueError, match="integer"):
        semantic_targets(maps.float(), num_labels=4)


def test_set_loss_applies_weights_to_every_term():
    masks, classes = predictions(layers=3)
    target = (torch.rand(2, 64, 64) > 0.5).float()
    mask_labels, class_labels = binary_targets(target)
    aux = [{"masks_queries_logits": m, "class_queries_logits": c} for m, c in zip(masks[:-1], classes[:-1])]
    crit = criterion()
    torch.manual_seed(1)
    terms = crit(masks[-1], classes[-1], mask_labels, class_labels, aux)
    raw_config = Mask2FormerConfig(num_labels=1, train_num_points=256)
    torch.manual_seed(1)
    raw = Mask2FormerLoss(raw_config, weight_dict={})(masks[-1], classes[-1], mask_labels, class_labels, aux)
    assert set(terms) == set(raw) and {"loss_mask_0", "loss_dice_1", "loss_cross_entropy_1"} <= set(terms)
    weights = {"loss_mask": 5.0, "loss_dice": 5.0, "loss_cross_entropy": 2.0}
    for key, value in raw.items():
        weight = next(w for name, w in weights.items() if key.startswith(name))
        torch.testing.assert_close(terms[key], weight * value)
    sum(terms.values()).backward()
    assert torch.isfinite(masks[-1].grad).all() and torch.isfinite(classes[0].grad).all()


def test_set_loss_without_auxiliary_terms():
    masks, classes = predictions(layers=2)
    mask_labels, class_labels = binary_targets((torch.rand(2, 32, 32) > 0.5).float())
    aux = [{"masks_queries_logits": masks[0], "class_queries_logits": classes[0]}]
    terms = criterion(use_auxiliary_loss=False)(masks[-1], classes[-1], mask_labels, class_labels, aux)
    assert set(terms) == {"loss_mask", "loss_dice", "loss_cross_entropy"}


def test_set_loss_on_an_all_empty_batch_is_classification_only():
    masks, classes = predictions()
    mask_labels, class_labels = binary_targets(torch.zeros(2, 32, 32))
    terms = criterion()(masks[0], classes[0], mask_labels, class_labels)
    assert terms["loss_mask"].item() == 0 and terms["loss_dice"].item() == 0
    assert torch.isfinite(terms["loss_cross_entropy"]) and terms["loss_cross_entropy"].item() > 0


def test_set_loss_rejects_bad_targets():
    masks, classes = predictions()
    crit = criterion()
    good_masks, good_classes = binary_targets(torch.ones(2, 8, 8))
    with pytest.raises(ValueError, match="one target per image"):
        crit(masks[0], classes[0], good_masks[:1], good_classes[:1])
    with pytest.raises(ValueError, match=r"lie in \[0, 1\)"):
        crit(masks[0], classes[0], good_masks, [torch.tensor([1]), torch.tensor([0])])
    with pytest.raises(ValueError, match=r"\(n, H, W\)"):
        crit(masks[0], classes[0], [m[0] for m in good_masks], good_classes)


def test_infonce_values_at_the_extremes():
    d, n_latent = 8, 4
    distinct = torch.eye(n_latent, d)[None].repeat(2, 1, 1)  # orthogonal latents
    low = infonce_latent_loss(distinct, distinct, temperature=0.1)
    expected = math.log(1 + (n_latent - 1) * math.exp(-10.0))  # cos 1 vs 0, over temperature 0.1
    assert low.item() == pytest.approx(expected, abs=1e-6)
    collapsed = torch.ones(2, n_latent, d)
    assert infonce_latent_loss(collapsed, collapsed).item() == pytest.approx(math.log(n_latent), rel=1e-5)


def test_infonce_pushes_collapsed_latents_apart():
    torch.manual_seed(0)
    latents = (torch.ones(2, 4, 8) + 0.01 * torch.randn(2, 4, 8)).requires_grad_()
    optimizer = torch.optim.SGD([latents], lr=1.0)
    losses = []
    for _ in range(20):
        view = latents + 0.001 * torch.randn_like(latents)  # a second, slightly perturbed view
        loss = infonce_latent_loss(latents, view, temperature=0.1)
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert losses[-1] < 0.5 * losses[0]


def test_infonce_rejects_bad_shapes():
    with pytest.raises(ValueError, match="both views"):
        infonce_latent_loss(torch.randn(2, 4, 8), torch.randn(2, 3, 8))
    with pytest.raises(ValueError, match="N_L >= 2"):
        infonce_latent_loss(torch.randn(2, 1, 8), torch.randn(2, 1, 8))


def test_infonce_one_direction_is_the_forward_term():
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(2, 4, 8, generator=g), torch.randn(2, 4, 8, generator=g)
    forward = infonce_latent_loss(a, b, 0.1, symmetric=False)
    backward = infonce_latent_loss(b, a, 0.1, symmetric=False)
    torch.testing.assert_close(infonce_latent_loss(a, b, 0.1), 0.5 * (forward + backward))
