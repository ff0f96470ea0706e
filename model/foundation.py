"""A small Mask2Former (Swin backbone), and a small SAM for GAVS, built from a config and saved with
`save_pretrained`.

Why: no foundation weights can be downloaded on the CPU machines this project runs its demo and tests
on. The model built here has the real structure (Swin window attention, deformable-attention pixel
decoder, masked-attention transformer decoder), so adapters, PMQS and the losses see the same module
names and call paths as `facebook/mask2former-swin-base-ade-semantic`, and TeSO loads it back through
the same `from_pretrained` call the real run uses. Its weights are random: with nothing pretrained to
preserve, a run on it trains the foundation too (`TeSOConfig.freeze_foundation: false`), which the
demo config says next to the setting.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch
from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation, SamConfig, SamModel, SwinConfig

from model.config import SmallFoundationConfig, SmallSamConfig
from pipeline.common.atomic import atomic_folder


def small_mask2former(cfg: SmallFoundationConfig) -> Mask2FormerForUniversalSegmentation:
    """A randomly initialised Mask2Former of the configured widths (seeded: the same weights every time)."""
    torch.manual_seed(cfg.seed)
    backbone = SwinConfig(
        image_size=cfg.image_size,
        patch_size=4,
        embed_dim=cfg.embed_dim,
        depths=list(cfg.depths),
        num_heads=list(cfg.num_heads),
        window_size=cfg.window_size,
        out_features=["stage1", "stage2", "stage3", "stage4"],
    )
    config = Mask2FormerConfig(
        backbone_config=backbone,
        use_timm_backbone=False,
        num_labels=cfg.num_labels,
        hidden_dim=cfg.hidden_dim,
        mask_feature_size=cfg.hidden_dim,
        feature_size=cfg.hidden_dim,
        encoder_feedforward_dim=cfg.feedforward_dim,
        dim_feedforward=cfg.feedforward_dim,
        encoder_layers=cfg.encoder_layers,
        decoder_layers=cfg.decoder_layers,
        num_attention_heads=cfg.num_attention_heads,
        num_queries=cfg.num_queries,
    )
    return Mask2FormerForUniversalSegmentation(config)


def small_sam(cfg: SmallSamConfig) -> SamModel:
    """A randomly initialised SAM of the configured widths (seeded), with SAM's structure: windowed
    and global ViT blocks, the prompt encoder, the two-way mask decoder."""
    torch.manual_seed(cfg.seed)
    config = SamConfig(
        vision_config=dict(hidden_size=cfg.hidden_size, output_channels=cfg.prompt_dim, num_hidden_layers=cfg.num_hidden_layers,
                           num_attention_heads=cfg.num_attention_heads, image_size=cfg.image_size, patch_size=16,
                           window_size=cfg.window_size, global_attn_indexes=list(cfg.global_attn_indexes),
                           num_pos_feats=cfg.prompt_dim // 2, mlp_dim=4 * cfg.hidden_size),
        prompt_encoder_config=dict(hidden_size=cfg.prompt_dim, image_size=cfg.image_size, patch_size=16, mask_input_channels=4),
        mask_decoder_config=dict(hidden_size=cfg.prompt_dim, mlp_dim=cfg.decoder_mlp_dim, num_attention_heads=cfg.decoder_heads,
                                 iou_head_hidden_dim=cfg.prompt_dim),
    )
    model = SamModel(config)
    # transformers draws every weight from N(0, 0.02), made for loading checkpoints over it: through
    # the decoder's upscaling convolutions and 3-layer hypernetworks the masks of such a random SAM
    # are ~1e-4 and barely train. PyTorch's own initialisation keeps them of order one.
    for module in model.modules():
        if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            module.reset_parameters()
    return model


def build_small_foundation(directory: str | Path, cfg: SmallFoundationConfig | SmallSamConfig) -> Path:
    """Build and save the model to `directory` (loadable with `from_pretrained`); returns the folder.

    Idempotent: a folder already holding a model built from the same config is left as it is."""
    path = Path(directory)
    recipe = path / "small_foundation.json"
    sam = isinstance(cfg, SmallSamConfig)
    wanted = json.dumps(({"kind": "sam"} if sam else {}) | asdict(cfg), sort_keys=True)
    if recipe.exists() and recipe.read_text() == wanted and (path / "config.json").exists():
        return path
    with atomic_folder(path) as tmp:
        (small_sam(cfg) if sam else small_mask2former(cfg)).save_pretrained(tmp)
        (tmp / "small_foundation.json").write_text(wanted)
    return path

