"""Adapters: identity at initialisation, placed on the three intended sites, and really on the call path."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from torch import nn
from transformers import Mask2FormerForUniversalSegmentation

from model.adapters import (
    MASK2FORMER_ADAPTER_SITES,
    AdaptedAttention,
    AdaptedLinear,
    Adapter,
    attach_adapters,
)
from tests.fixtures.tiny_mask2former import make_tiny_mask2former


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory) -> str:
    return make_tiny_mask2former(tmp_path_factory.mktemp("m2f"), num_labels=1)


def load(path: str) -> Mask2FormerForUniversalSegmentation:
    return Mask2FormerForUniversalSegmentation.from_pretrained(path).eval()


def test_adapter_is_identity_at_init_and_bottlenecked():
    adapter = Adapter(32, reduction=4)
    x = torch.randn(3, 5, 32)
    assert torch.equal(adapter(x), x)
    assert adapter.down.out_features == 8 and adapter.up.in_features == 8
    with torch.no_grad():
        adapter.up.weight.normal_()
    assert not torch.allclose(adapter(x), x)


def test_adapter_rejects_width_below_reduction():
    with pytest.raises(ValueError, match="smaller than its reduction"):
        Adapter(2, reduction=4)


def test_attach_adapters_wraps_the_three_sites(tiny_path):
    model = load(tiny_path)
    adapters = {site: attach_adapters(model, {site: p}) for site, p in MASK2FORMER_ADAPTER_SITES.items()}
    # Tiny model: 4 Swin stages x 1 block, 1 pixel-decoder encoder layer, 3 - 1 = 2 decoder layers.
    counts = {site: len(a) for site, a in adapters.items()}
    assert counts == {"visual": 4, "pixel_decoder": 1, "transformer_decoder": 2}
    for name in adapters["visual"]:
        assert name.endswith("attention.o_proj") and isinstance(model.get_submodule(name), AdaptedLinear)
    for name in adapters["pixel_decoder"]:
        assert name.endswith("self_attn.output_proj") and isinstance(model.get_submodule(name), AdaptedLinear)
    for name in adapters["transformer_decoder"]:
        wrapped = model.get_submodule(name)
        assert isinstance(wrapped, AdaptedAttention) and isinstance(wrapped.attention, nn.MultiheadAttention)
    widths = sorted(a.up.out_features for a in adapters["visual"].values())
    assert widths == [16, 32, 64, 128]  # each Swin stage's own width


def test_adapters_at_init_leave_mask2former_unchanged(tiny_path):
    plain, adapted = load(tiny_path), load(tiny_path)
    attach_adapters(adapted)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        a, b = plain(pixel_values=x), adapted(pixel_values=x)
    torch.testing.assert_close(b.masks_queries_logits, a.masks_queries_logits, atol=1e-6, rtol=0)
    torch.testing.assert_close(b.class_queries_logits, a.class_queries_logits, atol=1e-6, rtol=0)


@pytest.mark.parametrize("site", sorted(MASK2FORMER_ADAPTER_SITES))
def test_each_site_is_on_the_forward_path(tiny_path, site):
    """A trained adapter must change the output; this catches wrapping a module the model never calls
    (e.g. nn.MultiheadAttention.out_proj, whose weight is read directly)."""
    plain, adapted = load(tiny_path), load(tiny_path)
    adapters = attach_adapters(adapted, {site: MASK2FORMER_ADAPTER_SITES[site]})
    with torch.no_grad():
        for adapter in adapters.values():
            # Random, not constant: a constant shift over channels vanishes in the next LayerNorm.
            adapter.up.bias.normal_()
        x = torch.randn(1, 3, 64, 64)
        delta = adapted(pixel_values=x).masks_queries_logits - plain(pixel_values=x).masks_queries_logits
    assert delta.abs().max() > 1e-3


def test_attach_adapters_errors(tiny_path):
    model = load(tiny_path)
    with pytest.raises(ValueError, match="no module name matches"):
        attach_adapters(model, {"visual": r"model\.nothing\.here"})
    attach_adapters(model, {"visual": MASK2FORMER_ADAPTER_SITES["visual"]})
    with pytest.raises(ValueError, match="already has an adapter"):
        attach_adapters(model, {"visual": MASK2FORMER_ADAPTER_SITES["visual"]})
    with pytest.raises(TypeError, match="cannot adapt a LayerNorm"):
        attach_adapters(model, {"norm": r"model\.transformer_module\.decoder\.layernorm"})
