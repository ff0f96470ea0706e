"""TeSOSegmenter on a tiny random Mask2Former: outputs, freezing, identity at init, training, ablations."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import re

import pytest
import torch
from transformers import Mask2FormerForUniversalSegmentation

from model.losses import binary_targets
from model.segmenter import TeSOSegmenter
from tests.fixtures.tiny_mask2former import TINY_NUM_QUERIES, make_tiny_mask2former, tiny_teso_config

B, N_T, TEXT, N_L, D = 2, 4, 24, 4, 32


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory) -> str:
    return make_tiny_mask2former(tmp_path_factory.mktemp("m2f"), num_labels=1)


@pytest.fixture(scope="module")
def batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "pixel_values": torch.randn(B, 3, 64, 64, generator=g),
        "audio": torch.randn(B, 128, generator=g),
        "cues": torch.randn(B, N_T, TEXT, generator=g),
        "cue_valid": torch.tensor([[True, True, False, False], [True, True, True, True]]),
    }


def build(path: str, **overrides) -> TeSOSegmenter:
    torch.manual_seed(0)
    return TeSOSegmenter(tiny_teso_config(path, **overrides)).eval()


def plain_outputs(path: str, pixel_values: torch.Tensor):
    model = Mask2FormerForUniversalSegmentation.from_pretrained(path).eval()
    with torch.no_grad():
        return model(pixel_values=pixel_values)


def test_output_shapes(tiny_path, batch):
    with torch.no_grad():
        out = build(tiny_path)(**batch)
    assert out.mask_logits.shape == (B, TINY_NUM_QUERIES, 16, 16)
    assert out.class_logits.shape == (B, TINY_NUM_QUERIES, 2)
    assert out.semantic_map.shape == (B, 1, 64, 64)
    assert out.cue_scores.shape == (B, N_T) and out.cue_kept.shape == (B, N_T)
    assert out.prompt_padding_mask.shape == (B, N_T)
    assert out.pmqs_attention.shape == (B, 1, TINY_NUM_QUERIES, N_T)
    assert out.latent_audio.shape == (B, N_L, D)
    assert out.loss is None and out.loss_terms is None
    # The dynamic mask as documented: kept = valid and xi > 0.
    assert torch.equal(out.cue_kept, batch["cue_valid"] & (out.cue_scores > 0))


def test_class_head_is_resized_from_a_foundation_with_other_classes(tmp_path, batch):
    path = make_tiny_mask2former(tmp_path, num_labels=5)
    with torch.no_grad():
        out = build(path, num_labels=3)(**batch)
    assert out.class_logits.shape == (B, TINY_NUM_QUERIES, 4)
    assert out.semantic_map.shape == (B, 3, 64, 64)


def test_semantic_map_is_mask2formers_semantic_inference(tiny_path, batch):
    with torch.no_grad():
        out = build(tiny_path)(**batch)
    probs = out.class_logits.softmax(-1)[..., :-1]
    expected = torch.einsum("bqc,bqhw->bchw", probs, out.mask_logits.sigmoid())
    expected = torch.nn.functional.interpolate(expected, size=(64, 64), mode="bilinear", align_corners=False)
    torch.testing.assert_close(out.semantic_map, expected)


def test_fresh_model_without_prompts_equals_the_foundation_model(tiny_path, batch):
    """Adapters start as identities: with no prompt reaching the queries, TeSO is Mask2Former."""
    plain = plain_outputs(tiny_path, batch["pixel_values"])
    with torch.no_grad():
        out = build(tiny_path, use_text=False, use_audio=False)(pixel_values=batch["pixel_values"])
    torch.testing.assert_close(out.mask_logits, plain.masks_queries_logits, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.class_logits, plain.class_queries_logits, atol=1e-6, rtol=0)
    assert out.pmqs_attention is None and out.cue_scores is None


def test_all_cues_masked_leaves_the_queries_untouched(tiny_path, batch):
    plain = plain_outputs(tiny_path, batch["pixel_values"])
    no_cues = torch.zeros(B, N_T, dtype=torch.bool)
    with torch.no_grad():
        out = build(tiny_path)(**{**batch, "cue_valid": no_cues})
    assert torch.equal(out.pmqs_attention, torch.zeros_like(out.pmqs_attention))
    assert not out.cue_kept.any()
    torch.testing.assert_close(out.mask_logits, plain.masks_queries_logits, atol=1e-6, rtol=0)


def test_prompt_hook_is_removed_after_forward(tiny_path, batch):
    model = build(tiny_path)
    with torch.no_grad():
        model(**batch)
    assert not model.mask2former.model.transformer_module.decoder._forward_pre_hooks


TRAINABLE = [
    r"mask2former\.class_predictor\.(weight|bias)",
    r"mask2former\.model\..*\.adapter\.(down|up)\.(weight|bias)",
    r"sedam\..*",
    r"pmqs\..*",
]


def test_only_intended_parameters_train(tiny_path):
    model = build(tiny_path)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert all(any(re.fullmatch(p, n) for p in TRAINABLE) for n in trainable), sorted(trainable)
    assert not any(any(re.fullmatch(p, n) for p in TRAINABLE) for n in frozen)
    adapter_counts = {site: len(names) for site, names in model.adapter_names.items()}
    assert adapter_counts == {"visual": 4, "pixel_decoder": 1, "transformer_decoder": 2}
    assert any(n.endswith("attention.o_proj.linear.weight") for n in frozen)  # wrapped Swin weights stay frozen
    assert any(n.endswith("cross_attn.attention.in_proj_weight") for n in frozen)
    assert any(n.startswith("mask2former.model.transformer_module.queries_features") for n in frozen)


def test_param_groups_split_visual_adapters_from_the_rest(tiny_path):
    model = build(tiny_path)
    visual, other = model.param_groups(lr_visual_adapters=1e-4, lr_other=1e-3)
    assert (visual["name"], visual["lr"]) == ("visual_adapters", 1e-4)
    assert (other["name"], other["lr"]) == ("other", 1e-3)
    name_of = {id(p): n for n, p in model.named_parameters()}
    visual_names = {name_of[id(p)] for p in visual["params"]}
    other_names = {name_of[id(p)] for p in other["params"]}
    assert visual_names and all(
        n.startswith("mask2former.model.pixel_level_module.encoder.") and ".adapter." in n for n in visual_names
    )
    assert not visual_names & other_names
    assert visual_names | other_names == {n for n, p in model.named_parameters() if p.requires_grad}
    assert any(".pixel_level_module.decoder." in n for n in other_names)  # pixel-decoder adapters: high lr
    torch.optim.AdamW(model.param_groups())


def test_losses_are_finite_and_fall_when_overfitting_two_samples(tiny_path, batch):
    model = build(tiny_path).train()
    masks = torch.zeros(B, 64, 64)
    masks[0, 10:40, 10:40] = 1.0
    masks[1, 30:60, 5:50] = 1.0
    mask_labels, class_labels = binary_targets(masks)
    # A larger rate than the paper's: the tiny random model must move visibly in 10 steps.
    optimizer = torch.optim.AdamW(model.param_groups(lr_visual_adapters=1e-3, lr_other=1e-2))
    torch.manual_seed(0)
    losses = []
    for _ in range(10):
        out = model(**batch, mask_labels=mask_labels, class_labels=class_labels)
        assert all(torch.isfinite(v) for v in out.loss_terms.values())
        losses.append(out.loss.item())
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    expected_terms = {"loss_mask", "loss_dice", "loss_cross_entropy", "loss_infonce", "loss_mask_0"}
    assert expected_terms <= set(out.loss_terms)
    assert losses[-1] < 0.95 * losses[0], losses


def test_trainable_state_dict_round_trip(tiny_path, batch):
    trained = build(tiny_path)
    with torch.no_grad():
        for p in trained.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    state = trained.trainable_state_dict()
    assert all(not k.endswith(".linear.weight") for k in state)  # frozen weights are not saved
    fresh = build(tiny_path)
    fresh.load_trainable_state_dict(state)
    with torch.no_grad():
        torch.testing.assert_close(fresh(**batch).mask_logits, trained(**batch).mask_logits)
    state.pop(next(iter(state)))
    with pytest.raises(ValueError, match="does not fit"):
        fresh.load_trainable_state_dict(state)


def test_running_mean_threshold_learns_in_training_and_is_saved(tiny_path, batch):
    model = build(tiny_path, dynamic_mask_threshold="running_mean")
    plain = build(tiny_path)  # the same weights with the paper's zero rule
    with torch.no_grad():
        model(**batch)
    assert int(model.score_centre.steps) == 0  # evaluation never moves it
    model.train()
    plain.train()
    torch.manual_seed(1)
    out = model(**batch)
    torch.manual_seed(1)
    raw = plain(**batch).cue_scores.detach()  # the same dropout draws
    valid = batch["cue_valid"]
    torch.testing.assert_close(out.cue_scores.detach(), raw - raw[valid].mean())  # training: the batch mean
    assert torch.equal(out.prompt_padding_mask, ~valid | (out.cue_scores.detach() <= 0))
    assert int(model.score_centre.steps) == 1
    state = model.trainable_state_dict()
    assert {"score_centre.ema", "score_centre.steps"} <= set(state)
    fresh = build(tiny_path, dynamic_mask_threshold="running_mean")
    fresh.load_trainable_state_dict(state)
    assert float(fresh.score_centre.running_mean()) == pytest.approx(float(raw[valid].mean()), rel=1e-5)
    model.eval()
    with torch.no_grad():
        ref, again = model(**batch), fresh(**batch)
    torch.testing.assert_close(again.cue_scores, ref.cue_scores)
    assert torch.equal(again.prompt_padding_mask, ~valid | (again.cue_scores <= 0))


def test_latent_audio_prompts_beside_the_cues(tiny_path, batch):
    model = build(tiny_path, pmqs_latent_audio=True)
    with torch.no_grad():
        out = model(**batch)
    n_t, n_l = batch["cues"].shape[1], model.config.n_latent
    assert out.pmqs_attention.shape[-1] == n_t + n_l  # queries read cues and latent audio
    assert not out.prompt_padding_mask[:, n_t:].any()  # the latent audio is never masked
    assert out.cue_kept.shape == (batch["cues"].shape[0], n_t)
    # all cues dropped: the queries still hear the audio
    with torch.no_grad():
        muted_cues = model(**{**batch, "cue_valid": torch.zeros_like(batch["cue_valid"])})
    assert muted_cues.pmqs_attention[..., n_t:].sum(-1).allclose(torch.ones(()))


def test_audio_steers_the_full_model(tiny_path, batch):
    model = build(tiny_path, use_dynamic_mask=False)  # keep every valid cue so the audio path is open
    with torch.no_grad():
        a = model(**batch).mask_logits
        b = model(**{**batch, "audio": torch.randn(B, 128)}).mask_logits
    assert (a - b).abs().max() > 1e-4


def test_without_dynamic_mask_only_padding_is_masked(tiny_path, batch):
    with torch.no_grad():
        on = build(tiny_path)(**batch)
        off = build(tiny_path, use_dynamic_mask=False)(**batch)
    assert torch.equal(off.prompt_padding_mask, ~batch["cue_valid"])
    assert torch.equal(on.prompt_padding_mask, ~batch["cue_valid"] | (on.cue_scores <= 0))
    torch.testing.assert_close(on.cue_scores, off.cue_scores)


def test_without_pmqs_every_query_reads_the_same_mean(tiny_path, batch):
    with torch.no_grad():
        out = build(tiny_path, use_pmqs=False, use_dynamic_mask=False)(**batch)
    attn = out.pmqs_attention  # (B, 1, N_Q, N_T)
    kept = batch["cue_valid"].float()
    expected = (kept / kept.sum(1, keepdim=True))[:, None, None, :].expand_as(attn)
    torch.testing.assert_close(attn, expected)


def test_without_sedam_cues_and_audio_are_concatenated(tiny_path, batch):
    with torch.no_grad():
        out = build(tiny_path, use_sedam=False)(**batch)
    assert out.pmqs_attention.shape[-1] == N_T + N_L
    assert out.cue_scores is None
    expected = torch.cat([~batch["cue_valid"], torch.zeros(B, N_L, dtype=torch.bool)], dim=1)
    assert torch.equal(out.prompt_padding_mask, expected)
    assert torch.equal(out.cue_kept, batch["cue_valid"])


def test_without_text_latent_audio_prompts_the_queries(tiny_path, batch):
    model = build(tiny_path, use_text=False)
    with torch.no_grad():
        out = model(pixel_values=batch["pixel_values"], audio=batch["audio"])
    assert out.pmqs_attention.shape[-1] == N_L
    assert out.cue_scores is None and out.cue_kept is None
    assert not out.prompt_padding_mask.any()


def test_without_audio_the_audio_is_ignored(tiny_path, batch):
    model = build(tiny_path, use_audio=False)
    with torch.no_grad():
        a = model(**batch)
        b = model(**{**batch, "audio": None})
    assert a.latent_audio is None and a.cue_scores is None
    assert torch.equal(a.prompt_padding_mask, ~batch["cue_valid"])
    torch.testing.assert_close(a.mask_logits, b.mask_logits)


@pytest.mark.parametrize("use_infonce", [True, False])
def test_infonce_switch(tiny_path, batch, use_infonce):
    mask_labels, class_labels = binary_targets(torch.ones(B, 64, 64))
    out = build(tiny_path, use_infonce=use_infonce)(**batch, mask_labels=mask_labels, class_labels=class_labels)
    assert ("loss_infonce" in out.loss_terms) == use_infonce


def test_bad_inputs_raise(tiny_path, batch):
    model = build(tiny_path)
    with pytest.raises(ValueError, match="cues and cue_valid are required"):
        model(pixel_values=batch["pixel_values"], audio=batch["audio"])
    with pytest.raises(ValueError, match="audio must be"):
        model(**{**batch, "audio": torch.randn(B, 64)})
    with pytest.raises(ValueError, match="cue_valid must be bool"):
        model(**{**batch, "cue_valid": batch["cue_valid"].float()})
    with pytest.raises(ValueError, match="pixel_values must be"):
        model(**{**batch, "pixel_values": torch.randn(B, 1, 64, 64)})
    mask_labels, _ = binary_targets(torch.ones(B, 64, 64))
    with pytest.raises(ValueError, match="both mask_labels and class_labels"):
        model(**batch, mask_labels=mask_labels)


def test_a_frozen_foundation_runs_in_eval_mode_unless_told_otherwise(tiny_path):
    model = build(tiny_path).train()
    assert not model.mask2former.training and model.sedam.training  # stochastic depth off in the frozen network
    assert all(not m.training for m in model.mask2former.modules())
    assert build(tiny_path, frozen_foundation_mode="train").train().mask2former.training
    assert build(tiny_path, freeze_foundation=False).train().mask2former.training  # a trained foundation trains
    with pytest.raises(ValueError, match="frozen_foundation_mode"):
        tiny_teso_config(tiny_path, frozen_foundation_mode="half")
