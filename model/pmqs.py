"""PMQS: prompting mask queries with semantics (docs/METHOD.md, "PMQS").

Before Mask2Former's transformer decoder runs, every mask query reads the audio-text features F_AT
(projected to the query width) and adds what it read:

    Q~ = Q + softmax(Q F_AT^T / sqrt(d) + M) F_AT

M is 0 for kept cues and -inf for masked ones (the dynamic mask and padding). With several heads the
query width is split into heads and sqrt(d) becomes sqrt(d_head); one head is the equation above.

When every cue of a sample is masked, the softmax has nothing to normalise over; that sample's update
is defined as exactly zero (its queries pass through unchanged), never NaN. Masked logits are filled
with the dtype's most negative finite value rather than -inf, so no NaN appears in the forward or the
backward pass; the exact zero then comes from multiplying such rows by 0.

The dynamic mask arrives as a `gate` (B, N_P) that is exactly 1 (kept) or 0 (dropped) in the forward
pass but carries a straight-through gradient (model/dynamic_mask.py says why). PMQS applies it by
renormalising: softmax over the unpadded prompts, times the gate, divided by the gated sum. With a
0/1 gate this is the same number as the softmax over the kept prompts alone, the equation above; its
gradient also reaches the gate of a dropped prompt (how much the loss would gain from keeping it).
"""
from __future__ import annotations

import math

import torch
from torch import nn


class PMQS(nn.Module):
    def __init__(self, d_query: int = 256, d_in: int = 256, n_heads: int = 1, attend: bool = True):
        """attend=False is the 'w/o PMQS' ablation: the query-dependent logits are replaced by zeros,
        so every query receives the same plain mean of the kept prompts."""
        super().__init__()
        if d_query % n_heads:
            raise ValueError(f"query width {d_query} is not divisible by {n_heads} heads")
        self.n_heads = n_heads
        self.attend = attend
        self.proj = nn.Linear(d_in, d_query)  # F_AT to the query width; used as both key and value

    def forward(
        self,
        queries: torch.Tensor,
        f_at: torch.Tensor,
        key_padding_mask: torch.Tensor,
        gate: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """queries (B, N_Q, d_query); f_at (B, N_P, d_in); key_padding_mask (B, N_P) bool, True = masked;
        gate (B, N_P) float, forward values 0 or 1 (None = keep every unmasked prompt).

        Returns the prompted queries (B, N_Q, d_query) and the attention weights (B, h, N_Q, N_P);
        rows of a sample whose prompts are all masked are zero.
        """
        B, N_Q, d = queries.shape
        if f_at.ndim != 3 or f_at.shape[0] != B:
            raise ValueError(f"f_at must be (B={B}, N_P, d_in), got {tuple(f_at.shape)}")
        N_P = f_at.shape[1]
        if key_padding_mask.dtype != torch.bool or key_padding_mask.shape != (B, N_P):
            raise ValueError(
                f"key_padding_mask must be a bool tensor of shape {(B, N_P)}, "
                f"got {key_padding_mask.dtype} {tuple(key_padding_mask.shape)}"
            )
        h, d_head = self.n_heads, d // self.n_heads
        prompts = self.proj(f_at).view(B, N_P, h, d_head).transpose(1, 2)  # (B, h, N_P, d_head)
        q = queries.reshape(B, N_Q, h, d_head).transpose(1, 2)  # (B, h, N_Q, d_head)
        if self.attend:
            logits = q @ prompts.transpose(-2, -1) / math.sqrt(d_head)  # (B, h, N_Q, N_P)
        else:
            logits = queries.new_zeros(B, h, N_Q, N_P)
        if gate is None:
            gate = (~key_padding_mask).to(logits.dtype)
        elif gate.shape != (B, N_P):
            raise ValueError(f"gate must be of shape {(B, N_P)}, got {tuple(gate.shape)}")
        gate = gate.masked_fill(key_padding_mask, 0.0)[:, None, None, :]  # (B, 1, 1, N_P)
        logits = logits.masked_fill(key_padding_mask[:, None, None, :], torch.finfo(logits.dtype).min)
        any_kept = (gate.detach() > 0).any(dim=-1, keepdim=True).to(logits.dtype)  # (B, 1, 1, 1)
        weights = logits.softmax(dim=-1) * gate  # (B, h, N_Q, N_P)
        # nothing kept: the weights are all 0 and the denominator is 1, so the update is exactly 0
        attn = weights / (weights.sum(dim=-1, keepdim=True) + (1 - any_kept))
        update = (attn @ prompts).transpose(1, 2).reshape(B, N_Q, d)  # (B, N_Q, d_query)
        return queries + update, attn
