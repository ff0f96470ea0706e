"""SeDAM: shapes, the crossmodal equation, the no-text / no-audio ablations and the dropout views."""
import math

import pytest
import torch

from model.sedam import CrossModalLayer, SeDAM

B, N_T, N_L, D, H, TEXT = 2, 4, 3, 16, 4, 12


def make(**kw) -> SeDAM:
    torch.manual_seed(0)
    return SeDAM(audio_dim=128, text_dim=TEXT, d=D, n_latent=N_L, n_layers=2, n_heads=H, **kw).eval()


def test_shapes_with_text_and_audio():
    out = make()(torch.randn(B, 128), torch.randn(B, N_T, TEXT))
    assert out.f_at.shape == (B, N_T, D)
    assert out.f_al.shape == (B, N_L, D)
    assert out.cue_queries.shape == (B, H, N_T, D // H)
    assert out.audio_keys.shape == (B, H, N_L, D // H)


def test_crossmodal_layer_matches_the_equation():
    """F_AT = FC(LN(F_T + MHA(q=F_T, k=F_AL, v=F_AL))), MHA written out by hand, one head."""
    torch.manual_seed(1)
    layer = CrossModalLayer(D, n_heads=1)
    f_t, f_al = torch.randn(B, N_T, D), torch.randn(B, N_L, D)
    q, k, v = layer.q_proj(f_t), layer.k_proj(f_al), layer.v_proj(f_al)
    attn = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(D), dim=-1)
    expected = layer.fc(layer.norm(f_t + layer.out_proj(attn @ v)))
    got, q_heads, k_heads = layer(f_t, f_al)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(q_heads[:, 0], q)
    torch.testing.assert_close(k_heads[:, 0], k)


def test_audio_changes_the_audio_text_features():
    model, cues = make(), torch.randn(B, N_T, TEXT)
    a = model(torch.randn(B, 128), cues).f_at
    b = model(torch.randn(B, 128), cues).f_at
    assert not torch.allclose(a, b)


def test_no_text_uses_latent_audio_as_prompt():
    out = make()(torch.randn(B, 128), None)
    assert out.f_at.shape == (B, N_L, D)
    assert torch.equal(out.f_at, out.f_al)
    assert out.cue_queries is None and out.audio_keys is None


def test_no_audio_runs_text_alone():
    model = make()
    cues = torch.randn(B, N_T, TEXT)
    out = model(None, cues)
    assert out.f_at.shape == (B, N_T, D) and out.f_al is None and out.cue_queries is None
    f_t = model.embed_text(cues)
    for layer in model.layers:
        f_t = layer.fc(layer.norm(f_t))
    torch.testing.assert_close(out.f_at, f_t)


def test_dropout_views_differ_in_training_only():
    model = make(audio_dropout=0.5)
    audio = torch.randn(B, 128)
    assert torch.equal(model.embed_audio(audio), model.embed_audio(audio))
    model.train()
    assert not torch.equal(model.embed_audio(audio), model.embed_audio(audio))


def test_bad_inputs_raise():
    model = make()
    with pytest.raises(ValueError, match="needs audio, text cues, or both"):
        model(None, None)
    with pytest.raises(ValueError, match="audio must be"):
        model(torch.randn(B, 64), torch.randn(B, N_T, TEXT))
    with pytest.raises(ValueError, match="cues must be"):
        model(torch.randn(B, 128), torch.randn(B, N_T, TEXT + 1))
    with pytest.raises(ValueError, match="audio batch"):
        model(torch.randn(B + 1, 128), torch.randn(B, N_T, TEXT))
    with pytest.raises(ValueError, match="not divisible"):
        CrossModalLayer(10, n_heads=4)
