"""The small random Mask2Former: built from a config, loaded back through from_pretrained, reused."""
import pytest
from transformers import Mask2FormerForUniversalSegmentation

from model.config import SmallFoundationConfig
from model.foundation import build_small_foundation
from model.segmenter import TeSOSegmenter
from tests.fixtures.tiny_mask2former import make_tiny_mask2former, tiny_teso_config

SMALL = dict(image_size=64, embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 2, 2, 4], hidden_dim=32,
             feedforward_dim=64, encoder_layers=1, decoder_layers=3, num_attention_heads=2, num_queries=8)


def test_builds_loads_and_is_reused_until_the_config_changes(tmp_path):
    path = build_small_foundation(tmp_path / "f", SmallFoundationConfig(**SMALL))
    model = Mask2FormerForUniversalSegmentation.from_pretrained(path)
    assert model.config.num_queries == 8 and model.config.hidden_dim == 32
    assert model.config.backbone_config.embed_dim == 16
    weights = path / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    assert build_small_foundation(path, SmallFoundationConfig(**SMALL)) == path
    assert weights.stat().st_mtime_ns == stamp  # same config: left as it is
    build_small_foundation(path, SmallFoundationConfig(**{**SMALL, "num_queries": 4}))
    assert Mask2FormerForUniversalSegmentation.from_pretrained(path).config.num_queries == 4
    assert not list(tmp_path.glob(".*tmp"))


def test_seeded_weights_are_identical(tmp_path):
    a = build_small_foundation(tmp_path / "a", SmallFoundationConfig(**SMALL))
    b = build_small_foundation(tmp_path / "b", SmallFoundationConfig(**SMALL))
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()


def test_bad_config_lists_problems():
    with pytest.raises(ValueError, match="one entry per Swin stage.*divisible"):
        SmallFoundationConfig(depths=[1, 1], hidden_dim=30, num_attention_heads=4)


def test_unfrozen_foundation_trains_everything(tmp_path):
    path = make_tiny_mask2former(tmp_path / "m2f")
    frozen = TeSOSegmenter(tiny_teso_config(path))
    unfrozen = TeSOSegmenter(tiny_teso_config(path, freeze_foundation=False))
    assert not all(p.requires_grad for p in frozen.mask2former.parameters())
    assert all(p.requires_grad for p in unfrozen.parameters())
    groups = unfrozen.param_groups()
    assert sum(len(g["params"]) for g in groups) == len(list(unfrozen.parameters()))
    assert set(unfrozen.trainable_state_dict()) == {n for n, _ in unfrozen.named_parameters()}
