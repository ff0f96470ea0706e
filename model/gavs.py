"""GAVSSegmenter: SAM prompted with sound (GAVS, AAAI 2024), on transformers' `SamModel`.

    audio (B, 128) ─(+ noise, training)─► audio prompt MLP ─► one sparse prompt token (B, 1, 1, d_p)
    frame (B, 3, S, S) ─► SAM ViT (+ adapters on the last `tuned_blocks` blocks) ─► (B, d_p, S/16, S/16)
                                                         │
    SAM's no-mask dense prompt ──────────────────────────┤
                                                         ▼
                 SAM mask decoder (+ an adapter in each two-way block) ─► one mask logit map (B, 1, S/4, S/4)

SAM (`SamModel.from_pretrained`, facebook/sam-vit-base on GPU; model/foundation.py's small random
SAM on CPU machines) is frozen; the adapters and the audio prompt train. The parts are called one by
one (vision encoder, then mask decoder with our own sparse prompt) instead of through
`SamModel.forward`, which only builds sparse prompts from points and boxes.

What the official code does (GeWu-Lab/Generalizable-Audio-Visual-Segmentation: GAVS/avs_model.py,
segment_anything/modeling/{image_encoder,mask_decoder,transformer,common}.py), and how it maps here:
- Semantic-aware Audio Prompt: the VGGish feature of the frame's second goes through
  Linear(128, 512), ReLU, Linear(512, 256) inside the mask decoder and is its only sparse prompt
  (points and boxes are not used); the dense prompt is SAM's no-mask embedding; one mask output.
  Here: `audio_prompt`, the same MLP, its output width SAM's prompt width.
- Correlation Adapter: in each image-encoder block from `tune_v` on (the scripts pass 9 of
  ViT-B's 12), the MLP's output is `mlp_out + adapter(mlp_out)`, adapter Linear(d, 128), ReLU,
  Linear(128, d). Here: an Adapter (model/adapters.py) on `mlp.lin2` of the last `tuned_blocks`
  blocks, which adapts exactly that output.
- Decoder adapters: each two-way transformer block's MLP output goes through `x + Linear(128, 256)(
  GELU(Linear(256, 128)(x)))` (adapter_tf). Here: an Adapter with GELU on `mlp.lin2` of each block.
- Training noise: `audio + randn_like(audio) * std(audio)`, the std over the frame's feature (one
  frame at a time). Here the same per frame of a batch.
- Loss: binary cross-entropy with logits on the mask upsampled to the ground truth (the scripts'
  default `--loss bce`).
Where this differs, and why:
- frames are batched (`train.recipe.batch_size`); the official loop feeds one frame at a time;
- images are resized to `train.image_size` squares (1024 in configs/gavs_*.yaml); the official
  code resizes the longest side to 1024 and pads;
- the upsampling to the mask is one bilinear step from S/4 (SAM's postprocess_masks also goes
  through 1024 and crops its padding, which a square input does not have).
Adapters start from PyTorch's default initialisation as the official ones do (not as the identity).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import SamModel

from model.adapters import attach_adapters
from model.config import GAVSConfig
from model.segmenter import TeSOOutput
from model.trainable import TrainableWeights


class GAVSSegmenter(TrainableWeights):
    def __init__(self, config: GAVSConfig):
        super().__init__()
        self.config = config
        self.sam = SamModel.from_pretrained(config.foundation)
        self.sam.requires_grad_(not config.freeze_foundation)
        blocks = len(self.sam.vision_encoder.layers)
        if config.tuned_blocks > blocks:
            raise ValueError(f"tuned_blocks={config.tuned_blocks}, but the SAM in {config.foundation} has {blocks} blocks")
        tuned = "|".join(str(i) for i in range(blocks - config.tuned_blocks, blocks))
        sites = {}
        if tuned:
            sites["visual"] = (rf"vision_encoder\.layers\.({tuned})\.mlp\.lin2", "relu")
        if config.decoder_adapters:
            sites["decoder"] = (r"mask_decoder\.transformer\.layers\.\d+\.mlp\.lin2", "gelu")
        self.adapter_names: dict[str, list[str]] = {
            site: list(attach_adapters(self.sam, {site: pattern}, hidden=config.adapter_dim, act=act, identity_init=False))
            for site, (pattern, act) in sites.items()
        }
        d_prompt = self.sam.config.mask_decoder_config.hidden_size
        self.audio_prompt = nn.Sequential(
            nn.Linear(config.audio_dim, config.prompt_hidden), nn.ReLU(), nn.Linear(config.prompt_hidden, d_prompt)
        )
        self.train()

    def forward(
        self,
        pixel_values: torch.Tensor,
        audio: torch.Tensor | None = None,
        cues: torch.Tensor | None = None,
        cue_valid: torch.Tensor | None = None,
        mask_labels: list[torch.Tensor] | None = None,
        class_labels: list[torch.Tensor] | None = None,
    ) -> TeSOOutput:
        """pixel_values (B, 3, S, S) at SAM's input size, normalised as SAM's image processor does;
        audio (B, 128). Cues are accepted and ignored (GAVS has no text input), so the trainer and
        the evaluation call it as they call TeSO. With labels (model/losses.py's format) the output
        carries the BCE loss."""
        if pixel_values.ndim != 4 or pixel_values.shape[1] != 3:
            raise ValueError(f"pixel_values must be (B, 3, H, W), got {tuple(pixel_values.shape)}")
        B, _, H, W = pixel_values.shape
        expected = self.sam.config.vision_config.image_size
        if (H, W) != (expected, expected):
            raise ValueError(f"SAM in {self.config.foundation} takes {expected}x{expected} images (train.image_size), got {H}x{W}")
        if audio is None or audio.shape != (B, self.config.audio_dim):
            raise ValueError(f"audio must be ({B}, {self.config.audio_dim}), got {None if audio is None else tuple(audio.shape)}")
        if self.training and self.config.audio_noise:
            audio = audio + torch.randn_like(audio) * audio.std(dim=1, keepdim=True)

        image = self.sam.vision_encoder(pixel_values).last_hidden_state  # (B, d_p, h, w)
        position = self.sam.get_image_wide_positional_embeddings().expand(B, -1, -1, -1)  # (B, d_p, h, w)
        sparse = self.audio_prompt(audio)[:, None, None, :]  # (B, 1 prompt set, 1 token, d_p)
        dense = self.sam.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1).expand_as(image)  # (B, d_p, h, w)
        low_res, _ = self.sam.mask_decoder(image, position, sparse, dense, multimask_output=False)
        logits = low_res[:, 0]  # (B, 1, 4h, 4w)
        upsampled = F.interpolate(logits, size=(H, W), mode="bilinear", align_corners=False)  # (B, 1, H, W)

        loss, terms = None, None
        if mask_labels is not None:
            target = torch.stack([m.amax(0) if m.shape[0] else m.new_zeros(m.shape[1:]) for m in mask_labels])  # (B, H', W')
            pred = upsampled if target.shape[-2:] == (H, W) else F.interpolate(logits, size=target.shape[-2:], mode="bilinear", align_corners=False)
            terms = {"loss_bce": F.binary_cross_entropy_with_logits(pred[:, 0], target.to(pred.dtype))}
            loss = terms["loss_bce"]
        return TeSOOutput(mask_logits=logits, class_logits=None, semantic_map=upsampled.sigmoid(), loss=loss, loss_terms=terms)

    # --- training helpers (the trainer's interface, as TeSOSegmenter's; checkpoints: TrainableWeights) ---

    def param_groups(self, lr_visual_adapters: float = 1e-4, lr_other: float = 1e-3) -> list[dict]:
        """The official code trains every GAVS parameter at 1e-3; the trainer's two groups are kept
        (image-encoder adapters, the rest) so that one recipe drives both systems."""
        visual = [p for name in self.adapter_names.get("visual", []) for p in self.sam.get_submodule(name).adapter.parameters()]
        ids = {id(p) for p in visual}
        return [
            {"name": "visual_adapters", "params": visual, "lr": lr_visual_adapters},
            {"name": "other", "params": [p for p in self.parameters() if p.requires_grad and id(p) not in ids], "lr": lr_other},
        ]
