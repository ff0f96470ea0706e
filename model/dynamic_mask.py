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


def dynamic_cue_mask(
    q: torch.Tensor, k: torch.Tensor, valid: torch.Tensor, enabled: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Score the cues and build PMQS's key-padding mask.

    q: (B, h, N_T, d_head) cue queries; k: (B, h, N_L, d_head) latent audio keys; valid: (B, N_T) bool,
    False for padded cue slots. With enabled=False (ablation) only padded slots are masked.
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
