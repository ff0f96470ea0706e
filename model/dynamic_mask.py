"""Dynamic mask: drop the text cues that the audio does not support (docs/METHOD.md, "Dynamic mask").

Each cue gets one score, the attention logit between it and the latent audio features, averaged over
heads and over the N_L latents:

    xi_i = mean_h mean_j  q_{h,i} . k_{h,j} / sqrt(d_head)

A cue is kept where xi_i > 0 and masked otherwise; padded cue slots are always masked. The result is
the key-padding mask of PMQS, so a cue the audio disagrees with cannot prompt any mask query; the
scores are returned so that evaluation can report which cues survived (the paper's REC#2).

How the scores learn (the paper does not say): SeDAM's attention is a softmax over the latents, which
does not change when a constant is added to all of one cue's logits, and the hard mask passes no
gradient, so nothing in the loss would set the sign of xi. Left alone it drifts, and once every
cue is masked no audio reaches the queries and the model falls back to segmenting by preference (we
saw exactly this: identical predictions under muted audio). So `straight_through_gate` turns the
decision into a gate that is the hard 0/1 mask in the forward pass and has sigmoid(xi)'s gradient in
the backward pass (a straight-through estimator): the loss now tells each cue's score whether
keeping that cue would have helped. The forward computation is unchanged.
"""
from __future__ import annotations

import math

import torch
from torch import nn


def dynamic_cue_mask(
    q: torch.Tensor, k: torch.Tensor, valid: torch.Tensor, enabled: bool = True, centre: ScoreCentre | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Score the cues and build PMQS's key-padding mask.

    q: (B, h, N_T, d_head) cue queries; k: (B, h, N_L, d_head) latent audio keys; valid: (B, N_T) bool,
    False for padded cue slots. With enabled=False (ablation) only padded slots are masked. With a
    `centre` (`dynamic_mask_threshold: running_mean`) the scores are centred before the sign test;
    without, the test is the paper's xi > 0.
    Returns scores xi (B, N_T) and key_padding_mask (B, N_T) bool, True = masked.
    """
    if q.ndim != 4 or k.ndim != 4 or q.shape[:2] != k.shape[:2] or q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"q (B, h, N_T, d_head) and k (B, h, N_L, d_head) disagree: {tuple(q.shape)} vs {tuple(k.shape)}"
        )
    if valid.dtype != torch.bool or valid.shape != (q.shape[0], q.shape[2]):
        raise ValueError(
            f"valid must be a bool tensor of shape {(q.shape[0], q.shape[2])}, "
            f"got {valid.dtype} {tuple(valid.shape)}"
        )
    # mean over keys of q.k equals q . mean(k), which avoids building the (N_T, N_L) logit matrix.
    scores = (q * k.mean(dim=2, keepdim=True)).sum(-1) / math.sqrt(q.shape[-1])  # (B, h, N_T)
    scores = scores.mean(dim=1)  # (B, N_T)
    if centre is not None:
        scores = centre(scores, valid)
    masked = ~valid
    if enabled:
        masked = masked | (scores.detach() <= 0)
    return scores, masked


def straight_through_gate(scores: torch.Tensor, key_padding_mask: torch.Tensor) -> torch.Tensor:
    """(B, N_T) gate for PMQS: forward value 1 for kept cues and 0 for masked ones, exactly; backward
    the gradient of sigmoid(xi) for every unpadded cue (see the module docstring)."""
    soft = torch.sigmoid(scores)
    hard = (~key_padding_mask).to(scores.dtype)
    return hard + soft - soft.detach()


class ScoreCentre(nn.Module):
    """`dynamic_mask_threshold: running_mean`: scores centred on the mean of the valid cues' scores,
    so a cue is kept when it agrees with its audio more than cues agree with audio on average.

    In training the centre is the batch's mean, with its gradient, so a shift common to every
    cue gets no gradient at all; in evaluation it is the running mean of those batch means (a
    bias-corrected exponential average, momentum 0.01, saved with the weights): BatchNorm's rule.

    Why (measured on the demo's validation split, docs/METHOD.md "Dynamic mask", exploratory single
    seeds): xi = q . mean_j k_j
    has a part common to all cues (the biases of q and k, the mean audio) that no softmax of SeDAM
    sees, and the straight-through gradient moves it to whichever side the loss prefers on average.
    With the paper's zero rule the mask kept every cue (PMQS reading cues only: every cue token is
    also the queries' way to the audio) or dropped nearly every cue (PMQS also reading the latent
    audio: 2.8% of sounding and 0% of silent cues kept, although the scores ranked sounding cues
    above silent ones with AUC 0.73). Subtracting a running mean without the gradient was not
    enough: the common part rose by ~0.08 a step and the lagging mean kept every cue.
    """

    def __init__(self, momentum: float = 0.01):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("ema", torch.zeros(()))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def running_mean(self) -> torch.Tensor:
        if int(self.steps) == 0:
            return self.ema  # nothing seen yet: the paper's zero rule
        return self.ema / (1 - (1 - self.momentum) ** self.steps.to(self.ema.dtype))

    def forward(self, scores: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """scores (B, N_T) raw, valid (B, N_T) bool -> centred scores (B, N_T)."""
        if not self.training:
            return scores - self.running_mean()
        if not bool(valid.any()):
            return scores  # nothing to centre on; the running mean does not move
        centre = scores[valid].mean()
        self.ema.mul_(1 - self.momentum).add_(self.momentum * centre.detach().to(self.ema.dtype))
        self.steps.add_(1)
        return scores - centre
