"""TeSOSegmenter: a frozen Mask2Former steered by audio and text cues (docs/METHOD.md).

    audio F_A ─┐
               ├─ SeDAM ─► F_AT ─► dynamic mask ─► PMQS ─► mask queries ─► Mask2Former decoder
    cues F_T ──┘                                              ▲
    frame ──► Swin (+adapters) ─► pixel decoder (+adapters) ──┘ (masked attention +adapters)

Mask2Former (transformers' `Mask2FormerForUniversalSegmentation`) is loaded with `from_pretrained` and
frozen; adapters (model/adapters.py), SeDAM, PMQS and the re-sized class head train.

Where PMQS goes in: Mask2Former builds its mask queries inside `Mask2FormerTransformerModule.forward`
and hands them to the masked-attention decoder as `decoder(inputs_embeds=queries, ...)`, shape
(N_Q, B, d). Rather than re-implementing that forward (and tracking transformers' internals), each
TeSO forward registers a one-shot forward pre-hook on the decoder that replaces `inputs_embeds` with
the PMQS-prompted queries, and removes it afterwards. Module names, weights and the rest of the call
path stay transformers' own; if a future release stops passing `inputs_embeds` by keyword the hook
raises instead of silently running an unprompted model.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import Mask2FormerForUniversalSegmentation

from model.adapters import MASK2FORMER_ADAPTER_SITES, attach_adapters
from model.config import TeSOConfig
from model.dynamic_mask import ScoreCentre, dynamic_cue_mask, straight_through_gate
from model.losses import SetCriterion, infonce_latent_loss
from model.pmqs import PMQS
from model.sedam import SeDAM
from model.trainable import TrainableWeights


@dataclass
class TeSOOutput:
    mask_logits: torch.Tensor  # (B, N_Q, h, w) per-query mask logits at 1/4 of the input size
    class_logits: torch.Tensor  # (B, N_Q, N_C + 1) per-query class logits; the last class is "no object"
    # (B, N_C, H, W): sum over queries of P(class) * sigmoid(mask), Mask2Former's semantic inference,
    # upsampled to the input size. Non-negative scores, not logits (overlapping queries can push a
    # pixel above 1); a metric that applies sigmoid to logits needs torch.logit of the clamped map.
    semantic_map: torch.Tensor
    loss: torch.Tensor | None = None  # sum of loss_terms when labels were given
    loss_terms: dict[str, torch.Tensor] | None = None  # weighted terms by name
    cue_scores: torch.Tensor | None = None  # (B, N_T) dynamic-mask scores xi; None without text and audio
    cue_kept: torch.Tensor | None = None  # (B, N_T) bool, cues that reached PMQS unmasked; None without text
    prompt_padding_mask: torch.Tensor | None = None  # (B, N_P) bool, True = masked, as PMQS used it
    pmqs_attention: torch.Tensor | None = None  # (B, h, N_Q, N_P) which prompt each query read
    latent_audio: torch.Tensor | None = None  # (B, N_L, d) F_AL; None without audio


@dataclass
class _Prompt:
    f_at: torch.Tensor  # (B, N_P, d)
    key_padding_mask: torch.Tensor  # (B, N_P) bool
    cue_scores: torch.Tensor | None  # (B, N_T)
    cue_kept: torch.Tensor | None  # (B, N_T)
    f_al: torch.Tensor | None  # (B, N_L, d)
    f_al_view: torch.Tensor | None  # (B, N_L, d) second dropout view for InfoNCE
    gate: torch.Tensor | None = None  # (B, N_P) straight-through dynamic-mask gate; None = no dynamic mask
    pmqs_padding_mask: torch.Tensor | None = None  # (B, N_P) what PMQS masks outright (padding, with a gate)


class TeSOSegmenter(TrainableWeights):
    def __init__(self, config: TeSOConfig, adapter_sites: dict[str, str] | None = None):
        super().__init__()
        self.config = config
        self.mask2former = Mask2FormerForUniversalSegmentation.from_pretrained(
            config.foundation, num_labels=config.num_labels, ignore_mismatched_sizes=True
        )
        self.mask2former.requires_grad_(not config.freeze_foundation)
        self.mask2former.class_predictor.requires_grad_(True)  # N_C differs from the foundation's classes
        sites = MASK2FORMER_ADAPTER_SITES if adapter_sites is None else adapter_sites
        # Site -> names of the wrapped modules; the adapters themselves live inside mask2former.
        self.adapter_names: dict[str, list[str]] = {
            site: list(attach_adapters(self.mask2former, {site: pattern}, config.adapter_reduction))
            for site, pattern in sites.items()
        }
        foundation = self.mask2former.config
        self.sedam = SeDAM(
            audio_dim=config.audio_dim,
            text_dim=config.text_dim,
            d=config.d_model,
            n_latent=config.n_latent,
            n_layers=config.n_sedam_layers,
            n_heads=config.n_heads,
            audio_dropout=config.audio_dropout,
        )
        self.pmqs = PMQS(
            d_query=foundation.hidden_dim,
            d_in=config.d_model,
            n_heads=config.n_pmqs_heads,
            attend=config.use_pmqs,
        )
        # the dynamic mask's running score mean (dynamic_mask_threshold: running_mean), else None
        self.score_centre = ScoreCentre() if config.dynamic_mask_threshold == "running_mean" else None
        self.criterion = SetCriterion(foundation, config)
        self.train()  # from_pretrained leaves mask2former in eval mode; start consistent like any nn.Module

    def train(self, mode: bool = True) -> "TeSOSegmenter":
        super().train(mode)
        if mode and self.config.freeze_foundation and self.config.frozen_foundation_mode == "eval":
            # the adapters inside it have no dropout, so they train the same either way
            self.mask2former.eval()
        return self

    # --- inputs to prompts ---

    def _check_inputs(
        self,
        pixel_values: torch.Tensor,
        audio: torch.Tensor | None,
        cues: torch.Tensor | None,
        cue_valid: torch.Tensor | None,
    ) -> None:
        if pixel_values.ndim != 4 or pixel_values.shape[1] != 3:
            raise ValueError(f"pixel_values must be (B, 3, H, W), got {tuple(pixel_values.shape)}")
        B = pixel_values.shape[0]
        if self.config.use_audio:
            if audio is None or audio.shape != (B, self.config.audio_dim):
                got = None if audio is None else tuple(audio.shape)
                raise ValueError(f"audio must be ({B}, {self.config.audio_dim}) with use_audio, got {got}")
        if self.config.use_text:
            if cues is None or cue_valid is None:
                raise ValueError("cues and cue_valid are required with use_text")
            if cues.ndim != 3 or cues.shape[0] != B or cues.shape[2] != self.config.text_dim:
                raise ValueError(f"cues must be ({B}, N_T, {self.config.text_dim}), got {tuple(cues.shape)}")
            if cue_valid.dtype != torch.bool or cue_valid.shape != cues.shape[:2]:
                raise ValueError(
                    f"cue_valid must be bool {tuple(cues.shape[:2])}, "
                    f"got {cue_valid.dtype} {tuple(cue_valid.shape)}"
                )

    def _prompt(
        self,
        audio: torch.Tensor | None,
        cues: torch.Tensor | None,
        cue_valid: torch.Tensor | None,
        want_view: bool,
    ) -> _Prompt | None:
        cfg = self.config
        if not cfg.uses_prompt:
            return None
        audio = audio if cfg.use_audio else None
        cues, cue_valid = (cues, cue_valid) if cfg.use_text else (None, None)
        scores = gate = None
        if cfg.use_sedam:
            out = self.sedam(audio, cues)
            f_at, f_al = out.f_at, out.f_al  # (B, N_P, d), (B, N_L, d)
            if cues is None:  # no text: every latent audio token prompts
                kpm = torch.zeros(f_at.shape[:2], dtype=torch.bool, device=f_at.device)
            elif audio is None:  # no audio: nothing to score the cues against, only padding masks
                kpm = ~cue_valid
            else:
                scores, kpm = dynamic_cue_mask(out.cue_queries, out.audio_keys, cue_valid,
                                               enabled=cfg.use_dynamic_mask, centre=self.score_centre)
                if cfg.use_dynamic_mask:
                    gate = straight_through_gate(scores, kpm)
        else:  # "w/o SeDAM": projected cues and latent audio side by side, no crossmodal attention
            f_al = None if audio is None else self.sedam.embed_audio(audio)
            tokens, masks = [], []
            if cues is not None:
                tokens.append(self.sedam.embed_text(cues))  # (B, N_T, d)
                masks.append(~cue_valid)
            if f_al is not None:
                tokens.append(f_al)  # (B, N_L, d)
                masks.append(torch.zeros(f_al.shape[:2], dtype=torch.bool, device=f_al.device))
            f_at, kpm = torch.cat(tokens, dim=1), torch.cat(masks, dim=1)  # (B, N_P, d), (B, N_P)
        cue_kept = None if cues is None else ~kpm[:, : cues.shape[1]]  # text tokens come first
        f_al_view = self.sedam.embed_audio(audio) if want_view and f_al is not None else None
        # With a gate, PMQS masks only the padding outright and applies the gate (the same forward).
        kpm_pmqs = kpm if gate is None else ~cue_valid
        if cfg.pmqs_latent_audio and cfg.use_sedam and cues is not None and f_al is not None:
            # the latent audio prompts too, never masked: (B, N_T + N_L, d)
            always = torch.zeros(f_al.shape[:2], dtype=torch.bool, device=f_al.device)
            f_at, kpm, kpm_pmqs = torch.cat([f_at, f_al], 1), torch.cat([kpm, always], 1), torch.cat([kpm_pmqs, always], 1)
            if gate is not None:
                gate = torch.cat([gate, (~always).to(gate.dtype)], 1)
        return _Prompt(f_at, kpm, scores, cue_kept, f_al, f_al_view, gate, kpm_pmqs)

    # --- forward ---

    def forward(
        self,
        pixel_values: torch.Tensor,
        audio: torch.Tensor | None = None,
        cues: torch.Tensor | None = None,
        cue_valid: torch.Tensor | None = None,
        mask_labels: list[torch.Tensor] | None = None,
        class_labels: list[torch.Tensor] | None = None,
    ) -> TeSOOutput:
        """pixel_values (B, 3, H, W) normalised as the foundation's image processor does; audio (B, 128);
        cues (B, N_T, text_dim) zero-padded; cue_valid (B, N_T) bool, False for padding. With labels
        (Mask2Former format, see model/losses.py) the output carries the weighted loss terms."""
        self._check_inputs(pixel_values, audio, cues, cue_valid)
        if (mask_labels is None) != (class_labels is None):
            raise ValueError("give both mask_labels and class_labels, or neither")
        with_loss = mask_labels is not None
        prompt = self._prompt(audio, cues, cue_valid, want_view=with_loss and self.config.use_infonce)
        record: dict[str, torch.Tensor] = {}
        handle = None
        if prompt is not None:
            decoder = self.mask2former.model.transformer_module.decoder
            handle = decoder.register_forward_pre_hook(self._query_prompter(prompt, record), with_kwargs=True)
        try:
            out = self.mask2former(pixel_values=pixel_values, output_auxiliary_logits=True)
        finally:
            if handle is not None:
                handle.remove()

        mask_logits, class_logits = out.masks_queries_logits, out.class_queries_logits
        probs = class_logits.softmax(dim=-1)[..., :-1]  # (B, N_Q, N_C) drop "no object"
        semantic = torch.einsum("bqc,bqhw->bchw", probs, mask_logits.sigmoid())  # (B, N_C, h, w)
        semantic = F.interpolate(semantic, size=pixel_values.shape[-2:], mode="bilinear", align_corners=False)

        loss, terms = None, None
        if with_loss:
            terms = self.criterion(mask_logits, class_logits, mask_labels, class_labels, out.auxiliary_logits)
            if self.config.use_infonce and prompt is not None and prompt.f_al is not None:
                infonce = infonce_latent_loss(prompt.f_al, prompt.f_al_view, self.config.infonce_temperature, self.config.infonce_symmetric)
                terms["loss_infonce"] = self.config.infonce_weight * infonce
            loss = sum(terms.values())

        return TeSOOutput(
            mask_logits=mask_logits,
            class_logits=class_logits,
            semantic_map=semantic,
            loss=loss,
            loss_terms=terms,
            cue_scores=None if prompt is None else prompt.cue_scores,
            cue_kept=None if prompt is None else prompt.cue_kept,
            prompt_padding_mask=None if prompt is None else prompt.key_padding_mask,
            pmqs_attention=record.get("attention"),
            latent_audio=None if prompt is None else prompt.f_al,
        )

    def _query_prompter(self, prompt: _Prompt, record: dict[str, torch.Tensor]):
        """A forward pre-hook for Mask2Former's decoder that applies PMQS to its input queries."""

        def hook(module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> tuple[tuple, dict[str, Any]]:
            queries = kwargs.get("inputs_embeds")
            if queries is None:
                raise RuntimeError(
                    "Mask2Former's decoder was not called with inputs_embeds=...; this transformers version "
                    "passes the mask queries differently and PMQS cannot be applied"
                )
            prompted, attention = self.pmqs(
                queries.transpose(0, 1), prompt.f_at, prompt.pmqs_padding_mask, prompt.gate
            )
            record["attention"] = attention  # (B, h, N_Q, N_P)
            return args, {**kwargs, "inputs_embeds": prompted.transpose(0, 1)}  # back to (N_Q, B, d)

        return hook

    # --- training helpers ---

    def param_groups(self, lr_visual_adapters: float = 1e-4, lr_other: float = 1e-3) -> list[dict[str, Any]]:
        """AdamW parameter groups: the Swin adapters at a low rate, every other trainable parameter higher
        (with `freeze_foundation: false` that includes the foundation's own weights)."""
        visual = [
            p
            for name in self.adapter_names.get("visual", [])
            for p in self.mask2former.get_submodule(name).adapter.parameters()
        ]
        visual_ids = {id(p) for p in visual}
        other = [p for p in self.parameters() if p.requires_grad and id(p) not in visual_ids]
        return [
            {"name": "visual_adapters", "params": visual, "lr": lr_visual_adapters},
            {"name": "other", "params": other, "lr": lr_other},
        ]

    def _trained_names(self) -> set[str]:
        """The trained weights and the statistics learnt with them (the score centre's buffers)."""
        names = super()._trained_names()
        if self.score_centre is not None:
            names |= {f"score_centre.{n}" for n, _ in self.score_centre.named_buffers()}
        return names
