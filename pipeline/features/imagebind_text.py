"""ImageBind's text branch (the encoder TeSO embeds its cues with) as a transformers CLIP text model.

ImageBind's own package cannot be installed next to CPU torch, but its text branch is an OpenCLIP
text transformer, so the text weights of `imagebind_huge.pth` are renamed onto
`CLIPTextModelWithProjection`, which computes the same function
(ImageBind: imagebind/models/imagebind_model.py, transformer.py, helpers.py,
multimodal_preprocessors.py):

  ImageBind key                                    CLIPTextModelWithProjection key
  modality_preprocessors.text.token_embedding      text_model.embeddings.token_embedding
  modality_preprocessors.text.pos_embed (1, L, d)  text_model.embeddings.position_embedding (L, d)
  modality_preprocessors.text.mask (causal mask)   none: CLIP's text attention is causal itself
  modality_trunks.text.blocks.{i}.attn.in_proj_*   text_model.encoder.layers.{i}.self_attn.{q,k,v}_proj
  ...blocks.{i}.attn.out_proj, norm_1, norm_2, mlp ...layers.{i}.self_attn.out_proj, layer_norm1, layer_norm2, mlp
  modality_heads.text.proj.0 (LayerNorm)           text_model.final_layer_norm
  modality_heads.text.proj.1 (Linear, no bias)     text_projection
  modality_postprocessors.text.1.log_logit_scale   ImageBindTextEncoder.log_logit_scale

Why the two compute the same: ImageBind's text trunk has no pre- or post-transformer LayerNorm
(only layout changes), its blocks are pre-LN with exact GELU, and every LayerNorm uses eps 1e-6.
ImageBind applies the head LayerNorm after picking the EOT token, CLIP before; a LayerNorm acts on
each token alone, so the order does not matter. ImageBind pools at the argmax of the token ids (EOT
has the largest id, so a sentence cut at the context length, EOT lost, pools at SOT);
`ImageBindTextEncoder` pools by that argmax too. CLIP's own lookup of the first EOT id agrees on
every row that starts with SOT, so `clip.text_embeds` is the same embedding before normalisation.
The output is ImageBind's: L2-normalised, times exp(log_logit_scale) clipped at 100.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import torch
from torch import nn
from transformers import CLIPTextConfig, CLIPTextModelWithProjection, CLIPTokenizer

from pipeline.common.errors import UserError

PREPROCESSOR = "modality_preprocessors.text."
TRUNK = "modality_trunks.text."
HEAD = "modality_heads.text."
POSTPROCESSOR = "modality_postprocessors.text."
TEXT_PREFIXES = (PREPROCESSOR, TRUNK, HEAD, POSTPROCESSOR)
LAYER_NORM_EPS = 1e-6  # ImageBind's LayerNorm everywhere in the text branch
MAX_LOGIT_SCALE = 100.0  # LearnableLogitScaling's default clip
IMAGEBIND_HUGE_TEXT_HEADS = 16  # attention heads are not visible in the weights' shapes

# ImageBind block parameter -> CLIP encoder-layer parameter, for everything but the fused in_proj
_BLOCK_RENAMES = {
    "attn.out_proj.weight": "self_attn.out_proj.weight",
    "attn.out_proj.bias": "self_attn.out_proj.bias",
    "norm_1.weight": "layer_norm1.weight",
    "norm_1.bias": "layer_norm1.bias",
    "norm_2.weight": "layer_norm2.weight",
    "norm_2.bias": "layer_norm2.bias",
    "mlp.fc1.weight": "mlp.fc1.weight",
    "mlp.fc1.bias": "mlp.fc1.bias",
    "mlp.fc2.weight": "mlp.fc2.weight",
    "mlp.fc2.bias": "mlp.fc2.bias",
}
_BLOCK_FUSED = ("attn.in_proj_weight", "attn.in_proj_bias")


class ImageBindWeightsError(UserError, ValueError):
    """The ImageBind weights do not match the text branch this module converts."""


def _listing(title: str, names: list[str], limit: int = 30) -> str:
    shown = ", ".join(names[:limit]) + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")
    return f"{title} ({len(names)}): {shown}"


def _key_error(what: str, missing: list[str], unexpected: list[str], mismatched: list[str] = ()) -> ImageBindWeightsError:
    parts = [_listing(t, sorted(n)) for t, n in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched)) if n]
    return ImageBindWeightsError(f"{what} do not match ImageBind's text branch; " + "; ".join(parts))


def text_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The text branch's entries of a full ImageBind state dict (other modalities dropped)."""
    return {k: v for k, v in state_dict.items() if k.startswith(TEXT_PREFIXES)}


def imagebind_text_keys(num_layers: int) -> set[str]:
    """Every key ImageBind's text branch with `num_layers` blocks has in its state dict."""
    keys = {
        PREPROCESSOR + "token_embedding.weight",
        PREPROCESSOR + "pos_embed",
        PREPROCESSOR + "mask",
        HEAD + "proj.0.weight",
        HEAD + "proj.0.bias",
        HEAD + "proj.1.weight",
        POSTPROCESSOR + "1.log_logit_scale",
    }
    for i in range(num_layers):
        keys |= {f"{TRUNK}blocks.{i}.{name}" for name in (*_BLOCK_RENAMES, *_BLOCK_FUSED)}
    return keys


def imagebind_text_config(state_dict: dict[str, torch.Tensor], num_heads: int = IMAGEBIND_HUGE_TEXT_HEADS) -> CLIPTextConfig:
    """The CLIP text config equal to the ImageBind text branch in `state_dict` (sizes read from its shapes)."""
    needed = [PREPROCESSOR + "token_embedding.weight", PREPROCESSOR + "pos_embed", f"{TRUNK}blocks.0.mlp.fc1.weight", HEAD + "proj.1.weight"]
    missing = [k for k in needed if k not in state_dict]
    if missing:
        raise _key_error("the weights", missing, [])
    vocab_size, width = state_dict[needed[0]].shape
    layers = {int(m.group(1)) for k in state_dict if (m := re.match(re.escape(TRUNK) + r"blocks\.(\d+)\.", k))}
    if width % num_heads:
        raise ImageBindWeightsError(f"text width {width} is not divisible by num_heads={num_heads}")
    return CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=width,
        intermediate_size=state_dict[needed[2]].shape[0],
        projection_dim=state_dict[needed[3]].shape[0],
        num_hidden_layers=max(layers) + 1,
        num_attention_heads=num_heads,
        max_position_embeddings=state_dict[needed[1]].shape[-2],
        hidden_act="gelu",  # nn.GELU: exact erf, not CLIP's quick_gelu
        layer_norm_eps=LAYER_NORM_EPS,
        # CLIP BPE: <|startoftext|> and <|endoftext|> are the last two ids; ImageBind pads with 0
        bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1,
        pad_token_id=0,
    )


def convert_imagebind_text(state_dict: dict[str, torch.Tensor], config: CLIPTextConfig) -> dict[str, torch.Tensor]:
    """Rename ImageBind text-branch weights to the state dict of `ImageBindTextEncoder(config)`:
    its `clip.*` entries are exactly a `CLIPTextModelWithProjection`'s, plus `log_logit_scale`.
    Raises ImageBindWeightsError when the key set is not exactly the text branch's."""
    expected = imagebind_text_keys(config.num_hidden_layers)
    missing, unexpected = sorted(expected - state_dict.keys()), sorted(state_dict.keys() - expected)
    if missing or unexpected:
        raise _key_error("the weights' keys", missing, unexpected)
    mask = state_dict[PREPROCESSOR + "mask"]
    length = mask.shape[-1]
    if not torch.equal(mask.float(), torch.full((length, length), float("-inf")).triu(1)):
        raise ImageBindWeightsError(f"{PREPROCESSOR}mask is not a causal mask; the CLIP text model only computes causal attention")

    out = {
        "clip.text_model.embeddings.token_embedding.weight": state_dict[PREPROCESSOR + "token_embedding.weight"],
        "clip.text_model.embeddings.position_embedding.weight": state_dict[PREPROCESSOR + "pos_embed"].reshape(length, -1),  # (1, L, d) -> (L, d)
        "clip.text_model.final_layer_norm.weight": state_dict[HEAD + "proj.0.weight"],
        "clip.text_model.final_layer_norm.bias": state_dict[HEAD + "proj.0.bias"],
        "clip.text_projection.weight": state_dict[HEAD + "proj.1.weight"],
        "log_logit_scale": state_dict[POSTPROCESSOR + "1.log_logit_scale"].reshape(()),
    }
    for i in range(config.num_hidden_layers):
        src, dst = f"{TRUNK}blocks.{i}.", f"clip.text_model.encoder.layers.{i}."
        for old, new in _BLOCK_RENAMES.items():
            out[dst + new] = state_dict[src + old]
        # nn.MultiheadAttention stacks the q, k, v projections row-wise in this order
        q, k, v = state_dict[src + "attn.in_proj_weight"].chunk(3, dim=0)  # 3 x (d, d)
        qb, kb, vb = state_dict[src + "attn.in_proj_bias"].chunk(3, dim=0)  # 3 x (d,)
        for name, w, b in (("q_proj", q, qb), ("k_proj", k, kb), ("v_proj", v, vb)):
            out[f"{dst}self_attn.{name}.weight"], out[f"{dst}self_attn.{name}.bias"] = w, b
    return out


class ImageBindTextEncoder(nn.Module):
    """ImageBind's text branch: CLIP text transformer, EOT pooling by argmax of the ids, head
    LayerNorm + projection, then L2-normalise and scale by the stored logit scale."""

    def __init__(self, config: CLIPTextConfig, max_logit_scale: float = MAX_LOGIT_SCALE):
        super().__init__()
        self.config = config
        self.clip = CLIPTextModelWithProjection(config)
        # frozen here (only inference), so a buffer; it is saved and loaded with the weights
        self.register_buffer("log_logit_scale", torch.tensor(math.log(1 / 0.07)))
        self.max_logit_scale = max_logit_scale

    @property
    def dim(self) -> int:
        return int(self.config.projection_dim)

    @classmethod
    def from_imagebind(cls, state_dict: dict[str, torch.Tensor], num_heads: int = IMAGEBIND_HUGE_TEXT_HEADS) -> ImageBindTextEncoder:
        """Build from ImageBind text weights; any missing, unexpected or mis-shaped key is an error."""
        config = imagebind_text_config(state_dict, num_heads)
        model = cls(config)
        model.load_exact(convert_imagebind_text(state_dict, config))
        return model.eval()

    def load_exact(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Strict load that names every missing, unexpected or mis-shaped key in one clear error."""
        own = self.state_dict()
        missing, unexpected = sorted(own.keys() - state_dict.keys()), sorted(state_dict.keys() - own.keys())
        mismatched = [f"{k} {tuple(state_dict[k].shape)} != {tuple(own[k].shape)}" for k in own.keys() & state_dict.keys() if state_dict[k].shape != own[k].shape]
        if missing or unexpected or mismatched:
            raise _key_error("the converted weights", missing, unexpected, mismatched)
        self.load_state_dict(state_dict, strict=True)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(B, L) token ids -> (B, projection_dim) ImageBind text embeddings."""
        # no padding mask: ImageBind attends causally only, so tokens after EOT never reach it
        hidden = self.clip.text_model(input_ids=input_ids).last_hidden_state  # (B, L, d), head LayerNorm applied
        pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), input_ids.argmax(dim=-1)]  # (B, d)
        embeds = nn.functional.normalize(self.clip.text_projection(pooled), dim=-1)  # (B, D)
        return self.log_logit_scale.exp().clamp(max=self.max_logit_scale) * embeds


def check_tokenizer(tokenizer, config: CLIPTextConfig) -> None:
    """Argmax pooling needs <|endoftext|> to be the largest id the model knows."""
    if tokenizer.eos_token_id != config.vocab_size - 1 or len(tokenizer) > config.vocab_size:
        raise ValueError(
            f"tokenizer does not fit the ImageBind text model: its end-of-text id is {tokenizer.eos_token_id} and it has "
            f"{len(tokenizer)} tokens, the model needs end-of-text = {config.vocab_size - 1} and at most {config.vocab_size} tokens "
            "(use the CLIP BPE tokenizer, e.g. the tokenizer files of openai/clip-vit-large-patch14)"
        )


def imagebind_token_ids(tokenizer, sentences: list[str], context_length: int) -> torch.Tensor:
    """(n, L) ids laid out like ImageBind's SimpleTokenizer: [SOT] BPE [EOT], cut to
    `context_length` (EOT can be cut, as in ImageBind), zero-padded. Rows are padded to the
    longest row rather than to context_length: with causal attention, tokens after EOT cannot
    change the pooled token."""
    pieces = tokenizer(list(sentences), add_special_tokens=False)["input_ids"]
    rows = [([tokenizer.bos_token_id, *p, tokenizer.eos_token_id])[:context_length] for p in pieces]
    ids = torch.zeros(len(rows), max((len(r) for r in rows), default=0), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
    return ids


def load_clip_tokenizer(tokenizer_path: str | Path) -> CLIPTokenizer:
    folder = Path(tokenizer_path)
    if not (folder / "tokenizer.json").is_file() and not ((folder / "vocab.json").is_file() and (folder / "merges.txt").is_file()):
        raise FileNotFoundError(
            f"no CLIP BPE tokenizer in {folder}: it needs tokenizer.json or vocab.json + merges.txt "
            "(e.g. the tokenizer files of openai/clip-vit-large-patch14)"
        )
    return CLIPTokenizer.from_pretrained(str(folder))


def load_imagebind_text(
    weights_path: str | Path, tokenizer_path: str | Path, device: str = "cpu", num_heads: int = IMAGEBIND_HUGE_TEXT_HEADS
) -> tuple[ImageBindTextEncoder, CLIPTokenizer]:
    """The text branch of a local `imagebind_huge.pth` and its CLIP BPE tokenizer, ready for inference."""
    if weights_path is None or not Path(weights_path).is_file():
        raise FileNotFoundError(f"ImageBind weights file not found: {weights_path!r} (imagebind_huge.pth)")
    if tokenizer_path is None or not Path(tokenizer_path).is_dir():
        raise FileNotFoundError(f"the imagebind text encoder needs a local CLIP BPE tokenizer folder, got {tokenizer_path!r}")
    tokenizer = load_clip_tokenizer(tokenizer_path)
    state_dict = torch.load(weights_path, map_location="cpu", weights_only=True)
    if not isinstance(state_dict, dict):
        raise ImageBindWeightsError(f"{weights_path} does not hold a state dict (found {type(state_dict).__name__})")
    text = text_state_dict(state_dict)
    del state_dict  # the other modalities are most of the file
    if not text:
        raise ImageBindWeightsError(f"{weights_path} has no ImageBind text weights (no key starts with {', '.join(TEXT_PREFIXES)})")
    model = ImageBindTextEncoder.from_imagebind(text, num_heads)
    check_tokenizer(tokenizer, model.config)
    return model.to(device), tokenizer
