"""TeSO's training losses: Mask2Former's set loss plus a latent-audio InfoNCE term (docs/METHOD.md, "Losses").

The set loss is transformers' own `Mask2FormerLoss` (Hungarian matching with scipy, then binary
cross-entropy and Dice on sampled points of matched masks, cross-entropy on classes), built from a copy
of the foundation model's config with TeSO's weights (mask 5, Dice 5, class 2). The same weights are the
matcher's costs, as in Mask2Former. With deep supervision every decoder layer's prediction gets the
same loss, suffixed `_0`, `_1`, ... by transformers.

Targets use Mask2Former's format: per image a float tensor of object masks (n_i, H, W) and a long
tensor of their classes (n_i,). `binary_targets` and `semantic_targets` build it from AVSBench masks.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from transformers import Mask2FormerConfig
from transformers.models.mask2former.modeling_mask2former import Mask2FormerLoss

from model.config import TeSOConfig


class SetCriterion(nn.Module):
    """Weighted Mask2Former set loss over the final and (optionally) every auxiliary prediction."""

    def __init__(self, foundation_config: Mask2FormerConfig, config: TeSOConfig):
        super().__init__()
        loss_config = copy.deepcopy(foundation_config)
        loss_config.num_labels = config.num_labels
        loss_config.class_weight = config.class_weight
        loss_config.mask_weight = config.mask_weight
        loss_config.dice_weight = config.dice_weight
        loss_config.no_object_weight = config.no_object_weight
        loss_config.train_num_points = config.train_num_points
        self.num_labels = config.num_labels
        self.use_auxiliary_loss = config.use_auxiliary_loss
        self.weights = {
            "loss_cross_entropy": config.class_weight,
            "loss_mask": config.mask_weight,
            "loss_dice": config.dice_weight,
        }
        self.loss = Mask2FormerLoss(config=loss_config, weight_dict=self.weights)

    def _weight(self, key: str) -> float:
        for name, weight in self.weights.items():
            if key == name or key.startswith(name + "_"):
                return weight
        raise KeyError(f"Mask2FormerLoss returned an unknown term {key!r}")

    def forward(
        self,
        mask_logits: torch.Tensor,
        class_logits: torch.Tensor,
        mask_labels: list[torch.Tensor],
        class_labels: list[torch.Tensor],
        auxiliary: list[dict[str, torch.Tensor]] | None = None,
    ) -> dict[str, torch.Tensor]:
        """mask_logits (B, N_Q, h, w); class_logits (B, N_Q, N_C + 1); per image mask_labels[i] (n_i, H, W)
        and class_labels[i] (n_i,). Returns the weighted terms by name."""
        check_targets(mask_labels, class_labels, mask_logits.shape[0], self.num_labels)
        terms = self.loss(
            masks_queries_logits=mask_logits,
            class_queries_logits=class_logits,
            mask_labels=[m.to(mask_logits.dtype) for m in mask_labels],
            class_labels=class_labels,
            auxiliary_predictions=auxiliary if self.use_auxiliary_loss else None,
        )
        return {key: value * self._weight(key) for key, value in terms.items()}


def check_targets(
    mask_labels: list[torch.Tensor], class_labels: list[torch.Tensor], batch_size: int, num_labels: int
) -> None:
    """Raise a readable ValueError for targets that Mask2FormerLoss would misread or crash on."""
    if len(mask_labels) != batch_size or len(class_labels) != batch_size:
        raise ValueError(
            f"need one target per image: batch {batch_size}, "
            f"got {len(mask_labels)} mask_labels and {len(class_labels)} class_labels"
        )
    for i, (masks, classes) in enumerate(zip(mask_labels, class_labels)):
        if masks.ndim != 3 or classes.ndim != 1 or masks.shape[0] != classes.shape[0]:
            raise ValueError(
                f"image {i}: mask_labels must be (n, H, W) and class_labels (n,), "
                f"got {tuple(masks.shape)} and {tuple(classes.shape)}"
            )
        if classes.numel() and (classes.min() < 0 or classes.max() >= num_labels):
            raise ValueError(f"image {i}: class labels must lie in [0, {num_labels}), got {classes.tolist()}")


def binary_targets(masks: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Binary AVS masks (B, H, W) -> one 'sounding object' (class 0) per image whose mask is not empty.

    An empty ground truth becomes zero objects, so every query is pushed to 'no object' for that frame
    (Mask2FormerLoss then gives that image no mask loss, even when the whole batch is empty).
    """
    if masks.ndim != 3:
        raise ValueError(f"masks must be (B, H, W), got {tuple(masks.shape)}")
    fg = masks > 0.5  # (B, H, W)
    mask_labels = [m[None].float() if m.any() else m.new_zeros((0, *m.shape), dtype=torch.float) for m in fg]
    class_labels = [torch.zeros(len(m), dtype=torch.long, device=masks.device) for m in mask_labels]
    return mask_labels, class_labels


def semantic_targets(
    label_maps: torch.Tensor, num_labels: int, ignore_index: int | None = None
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """AVSS class maps (B, H, W) of indices in [0, num_labels) -> one mask per class present in each image.

    Pixels equal to ignore_index belong to no mask.
    """
    if label_maps.ndim != 3 or label_maps.dtype.is_floating_point:
        raise ValueError(
            f"label_maps must be integer (B, H, W), got {label_maps.dtype} {tuple(label_maps.shape)}"
        )
    mask_labels, class_labels = [], []
    for label_map in label_maps:
        present = torch.unique(label_map)
        if ignore_index is not None:
            present = present[present != ignore_index]
        if present.numel() and (present.min() < 0 or present.max() >= num_labels):
            raise ValueError(f"class indices must lie in [0, {num_labels}), found {present.tolist()}")
        mask_labels.append((label_map[None] == present[:, None, None]).float())  # (n, H, W)
        class_labels.append(present.long())
    return mask_labels, class_labels


def infonce_latent_loss(
    f_al: torch.Tensor, f_al_view: torch.Tensor, temperature: float = 0.1, symmetric: bool = True
) -> torch.Tensor:
    """InfoNCE that keeps the N_L latent audio features of a sample distinct from each other.

    Positive pair: latent i of a sample computed from one dropout view of its VGGish feature
    (`f_al`) and latent i of the same sample from a second, independent dropout view (`f_al_view`).
    Negatives: the other N_L - 1 latents of that same sample in the other view. Similarity is the
    cosine divided by `temperature`; the loss is the symmetric cross-entropy of picking the matching
    latent, averaged over samples and latents.

    Why this pair: the term should stop the latents from collapsing onto one vector (then text cues
    would have nothing to choose between), while each latent still carries the audio. Contrasting
    latents only within the same sample never asks a latent to look the same across different sounds,
    and the dropout view makes the positive a real invariance (a latent is stable when some audio
    dimensions drop out) rather than a vector compared with itself. In eval mode the two views are
    equal and the positive similarity is 1; the term then only repels the latents.
    """
    if f_al.shape != f_al_view.shape or f_al.ndim != 3:
        raise ValueError(
            f"both views must be (B, N_L, d) and equal, got {tuple(f_al.shape)} and {tuple(f_al_view.shape)}"
        )
    B, N_L, _ = f_al.shape
    if N_L < 2:
        raise ValueError("InfoNCE over latents needs N_L >= 2")
    a = F.normalize(f_al, dim=-1)  # (B, N_L, d)
    b = F.normalize(f_al_view, dim=-1)  # (B, N_L, d)
    logits = a @ b.transpose(1, 2) / temperature  # (B, N_L, N_L); diagonal = positives
    target = torch.arange(N_L, device=f_al.device).repeat(B)  # (B * N_L,)
    forward = F.cross_entropy(logits.flatten(0, 1), target)
    if not symmetric:
        return forward
    backward = F.cross_entropy(logits.transpose(1, 2).flatten(0, 1), target)
    return 0.5 * (forward + backward)
