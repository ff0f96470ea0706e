"""GAVSSegmenter on a small random SAM: outputs, adapter sites, freezing, training, checkpoints, settings."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch

from model.config import GAVSConfig, SmallSamConfig, model_settings
from model.foundation import build_small_foundation
from model.gavs import GAVSSegmenter
from model.losses import binary_targets
from model.registry import build_model

B, S = 2, 64
SAM = {"image_size": S, "hidden_size": 32, "num_hidden_layers": 3, "num_attention_heads": 2, "window_size": 2,
       "global_attn_indexes": [2], "prompt_dim": 16, "decoder_mlp_dim": 32, "decoder_heads": 2}


@pytest.fixture(scope="module")
def sam_path(tmp_path_factory) -> str:
    return str(build_small_foundation(tmp_path_factory.mktemp("sam"), SmallSamConfig(**SAM)))


@pytest.fixture(scope="module")
def batch() -> dict:
    g = torch.Generator().manual_seed(0)
    masks = torch.zeros(B, S, S)
    masks[0, 10:40, 12:30] = 1  # frame 1 has nothing sounding
    mask_labels, class_labels = binary_targets(masks)
    return {"pixel_values": torch.randn(B, 3, S, S, generator=g), "audio": torch.randn(B, 128, generator=g),
            "mask_labels": mask_labels, "class_labels": class_labels}


def build(path: str, **overrides) -> GAVSSegmenter:
    torch.manual_seed(0)
    return build_model(GAVSConfig(foundation=path, **overrides))


def test_one_audio_prompt_gives_one_mask_per_frame_at_the_input_size(sam_path, batch):
    model = build(sam_path).eval()
    with torch.no_grad():
        out = model(batch["pixel_values"], batch["audio"])
    assert out.semantic_map.shape == (B, 1, S, S)  # (B, N_C = 1, H, W), probabilities
    assert out.mask_logits.shape == (B, 1, S // 4, S // 4)  # SAM's low-resolution logits
    assert 0 <= float(out.semantic_map.min()) and float(out.semantic_map.max()) <= 1
    assert out.loss is None and out.cue_scores is None and out.pmqs_attention is None
    with torch.no_grad():
        other = model(batch["pixel_values"], batch["audio"].flip(0))
    assert not torch.allclose(other.semantic_map, out.semantic_map)  # each frame heard the other's audio: the prompt matters


def test_adapters_sit_on_the_last_tuned_blocks_and_in_every_decoder_block(sam_path):
    model = build(sam_path, tuned_blocks=2)
    assert model.adapter_names["visual"] == [f"vision_encoder.layers.{i}.mlp.lin2" for i in (1, 2)]
    assert model.adapter_names["decoder"] == [f"mask_decoder.transformer.layers.{i}.mlp.lin2" for i in (0, 1)]
    adapter = model.sam.get_submodule("vision_encoder.layers.2.mlp.lin2").adapter
    assert adapter.down.out_features == 128 and isinstance(adapter.act, torch.nn.ReLU)
    assert "visual" not in build(sam_path, tuned_blocks=0, decoder_adapters=False).adapter_names


def test_sam_stays_frozen_and_the_loss_falls(sam_path, batch):
    model = build(sam_path, audio_noise=False).train()  # the noise's own variance would blur a short run
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trained and all(".adapter." in n or n.startswith("audio_prompt.") for n in trained)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    opt = torch.optim.AdamW(model.param_groups(3e-3, 3e-3))
    losses = []
    for _ in range(20):
        out = model(batch["pixel_values"], batch["audio"], mask_labels=batch["mask_labels"], class_labels=batch["class_labels"])
        assert set(out.loss_terms) == {"loss_bce"}
        out.loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(float(out.loss))
    assert losses[-1] < losses[0] - 0.02
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)


def test_noise_is_added_to_the_audio_in_training_only(sam_path, batch):
    model = build(sam_path)
    model.eval()
    a = model(batch["pixel_values"], batch["audio"]).semantic_map
    assert torch.equal(a, model(batch["pixel_values"], batch["audio"]).semantic_map)
    model.train()
    torch.manual_seed(1)
    b = model(batch["pixel_values"], batch["audio"]).semantic_map
    assert not torch.allclose(a, b)
    quiet = build(sam_path, audio_noise=False).train()
    assert torch.allclose(quiet(batch["pixel_values"], batch["audio"]).semantic_map, a, atol=1e-6)


def test_trained_weights_round_trip(sam_path, batch):
    model = build(sam_path)
    with torch.no_grad():
        for p in model.audio_prompt.parameters():
            p.add_(0.1)
    state = model.trainable_state_dict()
    assert state and all(k.startswith("audio_prompt.") or ".adapter." in k for k in state)
    fresh = build(sam_path)
    fresh.load_trainable_state_dict(state)
    model.eval(), fresh.eval()
    assert torch.equal(model(batch["pixel_values"], batch["audio"]).semantic_map, fresh(batch["pixel_values"], batch["audio"]).semantic_map)
    with pytest.raises(ValueError, match="does not fit"):
        build(sam_path, decoder_adapters=False).load_trainable_state_dict(state)


def test_settings_are_checked(sam_path, batch):
    with pytest.raises(ValueError, match="num_labels must be 1"):
        GAVSConfig(num_labels=71)
    with pytest.raises(ValueError, match="tuned_blocks=9"):
        build(sam_path, tuned_blocks=9)
    with pytest.raises(ValueError, match="64x64"):
        build(sam_path)(torch.zeros(1, 3, 32, 32), torch.zeros(1, 128))
    assert isinstance(model_settings({"architecture": "gavs", "foundation": sam_path}), GAVSConfig)
    with pytest.raises(ValueError, match="architecture must be one of"):
        model_settings({"architecture": "maskformer"})
