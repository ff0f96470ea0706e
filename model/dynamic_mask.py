"""Dynamic mask: drop the text cues that the audio does not support (DESIGN.md section 3).

Each cue gets one score, the attention logit between it and the latent audio features, averaged over
heads and over the N_L latents:

    xi_i = mean_h mean_j  q_{h,i} . k_{h,j} / sqrt(d_head)

A cue is kept where xi_i > 0 and masked otherwise; padded cue slots are always masked. The result is
the key-padding mask of PMQS, so a cue the audio disagrees with cannot prompt any mask query.
The mask is a hard decision and passes no gradient; the scores are returned so that evaluation can
report which cues survived (the paper's REC#2).
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
