"""SeDAM: semantic-driven audio modeling (docs/METHOD.md, "SeDAM").

One VGGish feature F_A per second is projected to N_L latent audio features F_AL, so that several
sounding objects can each find "their" part of the audio. Text cues F_T (the LLM's sounding-object
words, embedded) then read the latent audio with multi-head cross-attention, N times:

    F~   = MHA(q=F_T, k=F_AL, v=F_AL)
    F_T <- FC(LN(F_T + F~))            after the last layer F_AT := F_T

The last layer's queries and keys are returned too: the dynamic mask scores each cue from them.

Ablations (TeSOConfig.use_text / use_audio):
  * no text: there is nothing to attend with, so the latent audio features themselves are F_AT
    (N_L prompt tokens, none masked). They are already d-wide and are what the text would have read.
  * no audio: the cross-attention term F~ is dropped and each layer computes FC(LN(F_T)), so the
    cue features pass through the same depth and parameters, but no audio enters.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class SeDAMOutput:
    f_at: torch.Tensor  # (B, N_T, d) audio-text features; (B, N_L, d) without text
    f_al: torch.Tensor | None  # (B, N_L, d) latent audio features; None without audio
    cue_queries: torch.Tensor | None  # (B, h, N_T, d_head) last layer's queries; None unless text and audio
    audio_keys: torch.Tensor | None  # (B, h, N_L, d_head) last layer's keys; None unless text and audio


class CrossModalLayer(nn.Module):
    """Text cues attend to latent audio; F_T <- FC(LN(F_T + MHA(F_T, F_AL, F_AL)))."""

    def __init__(self, d: int, n_heads: int):
        super().__init__()
        if d % n_heads:
            raise ValueError(f"width {d} is not divisible by {n_heads} heads")
        self.n_heads = n_heads
        self.q_proj = nn.Linear(d, d)
        self.k_proj = nn.Linear(d, d)
        self.v_proj = nn.Linear(d, d)
        self.out_proj = nn.Linear(d, d)
        self.norm = nn.LayerNorm(d)
        self.fc = nn.Linear(d, d)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:  # (B, N, d) -> (B, h, N, d_head)
        B, N, d = x.shape
        return x.view(B, N, self.n_heads, d // self.n_heads).transpose(1, 2)

    def forward(
        self, f_t: torch.Tensor, f_al: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        if f_al is None:  # "no audio" ablation: no cross-attention term
            return self.fc(self.norm(f_t)), None, None
        B, N_T, d = f_t.shape
        q = self._heads(self.q_proj(f_t))  # (B, h, N_T, d_head)
        k = self._heads(self.k_proj(f_al))  # (B, h, N_L, d_head)
        v = self._heads(self.v_proj(f_al))  # (B, h, N_L, d_head)
        attn = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(dim=-1)  # (B, h, N_T, N_L)
        f_tilde = (attn @ v).transpose(1, 2).reshape(B, N_T, d)  # (B, N_T, d)
        f_tilde = self.out_proj(f_tilde)
        return self.fc(self.norm(f_t + f_tilde)), q, k


class SeDAM(nn.Module):
    def __init__(
        self,
        audio_dim: int = 128,
        text_dim: int = 1024,
        d: int = 256,
        n_latent: int = 8,
        n_layers: int = 4,
        n_heads: int = 8,
        audio_dropout: float = 0.1,
    ):
        super().__init__()
        self.audio_dim, self.text_dim, self.d, self.n_latent = audio_dim, text_dim, d, n_latent
        self.audio_dropout = nn.Dropout(audio_dropout)
        # One linear map to N_L * d: each latent slot gets its own projection of the same F_A.
        self.audio_proj = nn.Linear(audio_dim, n_latent * d)
        self.text_proj = nn.Linear(text_dim, d)
        self.layers = nn.ModuleList(CrossModalLayer(d, n_heads) for _ in range(n_layers))

    def embed_audio(self, audio: torch.Tensor) -> torch.Tensor:
        """F_A (B, audio_dim) -> F_AL (B, N_L, d). Each call draws a fresh dropout mask in training."""
        if audio.ndim != 2 or audio.shape[1] != self.audio_dim:
            raise ValueError(f"audio must be (B, {self.audio_dim}), got {tuple(audio.shape)}")
        B = audio.shape[0]
        return self.audio_proj(self.audio_dropout(audio)).view(B, self.n_latent, self.d)  # (B, N_L, d)

    def embed_text(self, cues: torch.Tensor) -> torch.Tensor:
        """Cue embeddings (B, N_T, text_dim) -> F_T (B, N_T, d)."""
        if cues.ndim != 3 or cues.shape[2] != self.text_dim:
            raise ValueError(f"cues must be (B, N_T, {self.text_dim}), got {tuple(cues.shape)}")
        return self.text_proj(cues)

    def forward(self, audio: torch.Tensor | None, cues: torch.Tensor | None) -> SeDAMOutput:
        if audio is None and cues is None:
            raise ValueError("SeDAM needs audio, text cues, or both")
        f_al = None if audio is None else self.embed_audio(audio)  # (B, N_L, d)
        if cues is None:
            return SeDAMOutput(f_at=f_al, f_al=f_al, cue_queries=None, audio_keys=None)
        f_t = self.embed_text(cues)  # (B, N_T, d)
        if f_al is not None and f_al.shape[0] != f_t.shape[0]:
            raise ValueError(f"audio batch {f_al.shape[0]} != cue batch {f_t.shape[0]}")
        q = k = None
        for layer in self.layers:
            f_t, q, k = layer(f_t, f_al)
        return SeDAMOutput(f_at=f_t, f_al=f_al, cue_queries=q, audio_keys=k)
