"""Adapters: small bottleneck MLPs that lightly tune a frozen Mask2Former (docs/METHOD.md, "Adapters").

An adapter is `x + up(act(down(x)))` with widths d -> d / 4 -> d. Its up-projection starts at zero, so
a freshly adapted model computes exactly what the frozen foundation model computes, and training moves
away from it only as far as the loss asks.

TeSO puts adapters on the output projections of three attention blocks of Mask2Former:
  (a) "visual": the Swin backbone's window attention (`...attention.o_proj`, a Linear),
  (b) "pixel_decoder": the pixel decoder's multi-scale deformable attention (`...self_attn.output_proj`),
  (c) "transformer_decoder": the transformer decoder's masked cross-attention (`...cross_attn`).
Site (c) is a `torch.nn.MultiheadAttention`, which reads its `out_proj.weight` directly inside
`F.multi_head_attention_forward` instead of calling `out_proj`; wrapping `out_proj` would be silently
skipped. So there we wrap the whole attention module and adapt its output, which is the same thing:
the adapter sees the tensor right after the output projection.
"""
from __future__ import annotations

import re

import torch
from torch import nn

# Module-name patterns (matched in full) of the three sites in transformers' Mask2Former (5.x names).
MASK2FORMER_ADAPTER_SITES: dict[str, str] = {
    "visual": r"model\.pixel_level_module\.encoder\..*\.attention\.o_proj",
    "pixel_decoder": r"model\.pixel_level_module\.decoder\.encoder\.layers\.\d+\.self_attn\.output_proj",
    "transformer_decoder": r"model\.transformer_module\.decoder\.layers\.\d+\.cross_attn",
}


class Adapter(nn.Module):
    """Residual bottleneck MLP, d -> d / reduction (or `hidden`) -> d; the identity map at
    initialisation unless `identity_init` is False (GAVS's adapters start from PyTorch's default
    initialisation, model/gavs.py)."""

    def __init__(self, d: int, reduction: int = 4, hidden: int | None = None, act: str = "gelu", identity_init: bool = True):
        super().__init__()
        if hidden is None and d < reduction:
            raise ValueError(f"adapter width {d} is smaller than its reduction factor {reduction}")
        width = hidden if hidden is not None else d // reduction
        self.down = nn.Linear(d, width)
        self.act = {"gelu": nn.GELU, "relu": nn.ReLU}[act]()
        self.up = nn.Linear(width, d)
        if identity_init:  # zero up-projection: the residual branch adds nothing until trained
            nn.init.zeros_(self.up.weight)
            nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., d) -> (..., d)
        return x + self.up(self.act(self.down(x)))


class AdaptedLinear(nn.Module):
    """A frozen Linear followed by its adapter: adapter(linear(x))."""

    def __init__(self, linear: nn.Linear, adapter: Adapter):
        super().__init__()
        self.linear = linear
        self.adapter = adapter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.adapter(self.linear(x))


class AdaptedAttention(nn.Module):
    """A frozen nn.MultiheadAttention whose output (after out_proj) passes through an adapter.

    Keeps MultiheadAttention's call signature and its (output, weights) return value.
    """

    def __init__(self, attention: nn.MultiheadAttention, adapter: Adapter):
        super().__init__()
        self.attention = attention
        self.adapter = adapter

    def forward(self, *args, **kwargs) -> tuple[torch.Tensor, torch.Tensor | None]:
        output, weights = self.attention(*args, **kwargs)  # output (L, B, d) or (B, L, d)
        return self.adapter(output), weights


def _wrap(module: nn.Module, reduction: int, **adapter_kwargs) -> tuple[nn.Module, Adapter]:
    if isinstance(module, nn.MultiheadAttention):
        adapter = Adapter(module.embed_dim, reduction, **adapter_kwargs)
        return AdaptedAttention(module, adapter), adapter
    if isinstance(module, nn.Linear):
        adapter = Adapter(module.out_features, reduction, **adapter_kwargs)
        return AdaptedLinear(module, adapter), adapter
    raise TypeError(f"cannot adapt a {type(module).__name__}; expected nn.Linear or nn.MultiheadAttention")


def attach_adapters(
    model: nn.Module, sites: dict[str, str] | None = None, reduction: int = 4, **adapter_kwargs
) -> dict[str, Adapter]:
    """Wrap every module whose name fully matches a site's pattern with an adapter, in place
    (`adapter_kwargs`: Adapter's hidden, act, identity_init).

    Returns {module name: adapter}. Each site must match at least one module, so a renamed module in a
    new transformers release fails loudly instead of training a model without its adapters.
    New adapters live on the device and dtype of the module they wrap.
    """
    sites = MASK2FORMER_ADAPTER_SITES if sites is None else sites
    adapters: dict[str, Adapter] = {}
    for site, pattern in sites.items():
        named = dict(model.named_modules())  # re-read: an earlier site may have wrapped modules
        matches = [name for name in named if re.fullmatch(pattern, name)]
        if not matches:
            raise ValueError(f"adapter site {site!r}: no module name matches {pattern!r}")
        for name in matches:
            target = named[name]
            if isinstance(target, (AdaptedLinear, AdaptedAttention)):
                raise ValueError(f"module {name!r} already has an adapter")
            wrapped, adapter = _wrap(target, reduction, **adapter_kwargs)
            reference = next(target.parameters())
            adapter.to(device=reference.device, dtype=reference.dtype)
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, child, wrapped)
            adapters[name] = adapter
    return adapters

