"""PMQS: Q~ = Q + softmax(Q F_AT^T / sqrt(d) + M) F_AT, with masked prompts and the all-masked guard."""
import math

import pytest
import torch

from model.pmqs import PMQS

B, N_Q, N_P, D, D_IN = 2, 5, 4, 8, 6


def make(**kw) -> PMQS:
    torch.manual_seed(0)
    return PMQS(d_query=D, d_in=D_IN, **kw)


def test_matches_the_equation_with_one_head():
    pmqs = make(n_heads=1)
    queries, f_at = torch.randn(B, N_Q, D), torch.randn(B, N_P, D_IN)
    mask = torch.tensor([[False, True, False, True], [False, False, False, False]])
    prompts = pmqs.proj(f_at)  # (B, N_P, D)
    m = torch.zeros(B, 1, N_P).masked_fill(mask[:, None, :], float("-inf"))
    attn = torch.softmax(queries @ prompts.transpose(1, 2) / math.sqrt(D) + m, dim=-1)
    out, weights = pmqs(queries, f_at, mask)
    torch.testing.assert_close(out, queries + attn @ prompts)
    torch.testing.assert_close(weights[:, 0], attn)


def test_shapes_and_masked_prompts_are_ignored():
    pmqs = make(n_heads=2)
    queries, f_at = torch.randn(B, N_Q, D), torch.randn(B, N_P, D_IN)
    mask = torch.tensor([[False, True, False, False], [True, False, False, True]])
    out, weights = pmqs(queries, f_at, mask)
    assert out.shape == (B, N_Q, D) and weights.shape == (B, 2, N_Q, N_P)
    assert torch.all(weights.masked_select(mask[:, None, None, :]) == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(B, 2, N_Q))
    changed = f_at.clone()
    changed[mask] = 100.0  # masked prompts may hold anything
    torch.testing.assert_close(pmqs(queries, changed, mask)[0], out)


def test_all_masked_gives_exactly_zero_update_and_finite_gradients():
    pmqs = make(n_heads=2)
    queries = torch.randn(B, N_Q, D, requires_grad=True)
    f_at = torch.randn(B, N_P, D_IN)
    mask = torch.tensor([[True] * N_P, [False, True, True, True]])  # sample 0: every prompt masked
    out, weights = pmqs(queries, f_at, mask)
    assert torch.equal(out[0], queries[0])
    assert torch.equal(weights[0], torch.zeros_like(weights[0]))
    assert not torch.equal(out[1], queries[1])
    assert torch.isfinite(out).all() and torch.isfinite(weights).all()
    out.square().sum().backward()
    assert torch.isfinite(queries.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in pmqs.parameters())


def test_without_attention_every_query_gets_the_mean_of_kept_prompts():
    pmqs = make(n_heads=1, attend=False)
    queries, f_at = torch.randn(B, N_Q, D), torch.randn(B, N_P, D_IN)
    mask = torch.tensor([[False, True, False, True], [False, False, False, False]])
    out, weights = pmqs(queries, f_at, mask)
    prompts = pmqs.proj(f_at)
    kept = (~mask).float()
    mean = (prompts * kept[..., None]).sum(1) / kept.sum(1, keepdim=True)  # (B, D)
    torch.testing.assert_close(out, queries + mean[:, None, :])
    assert torch.allclose(weights, weights[:, :, :1].expand_as(weights))  # identical rows for all queries


def test_bad_inputs_raise():
    pmqs = make()
    queries, f_at = torch.randn(B, N_Q, D), torch.randn(B, N_P, D_IN)
    with pytest.raises(ValueError, match="key_padding_mask"):
        pmqs(queries, f_at, torch.zeros(B, N_P))
    with pytest.raises(ValueError, match="key_padding_mask"):
        pmqs(queries, f_at, torch.zeros(B, N_P + 1, dtype=torch.bool))
    with pytest.raises(ValueError, match="f_at must be"):
        pmqs(queries, torch.randn(B + 1, N_P, D_IN), torch.zeros(B, N_P, dtype=torch.bool))
    with pytest.raises(ValueError, match="not divisible"):
        PMQS(d_query=10, d_in=4, n_heads=3)


def test_straight_through_gate_keeps_the_forward_and_trains_dropped_cues():
    from model.dynamic_mask import straight_through_gate

    pmqs = make(n_heads=2)
    queries, f_at = torch.randn(B, N_Q, D), torch.randn(B, N_P, D_IN)
    padding = torch.tensor([[False, False, False, True], [False, False, False, False]])
    scores = torch.tensor([[0.5, -0.3, 0.2, 0.9], [-1.0, -0.2, -0.4, -0.1]], requires_grad=True)
    dropped = padding | (scores.detach() <= 0)  # sample 1: every cue dropped
    out, weights = pmqs(queries, f_at, padding, straight_through_gate(scores, dropped))
    hard_out, hard_weights = pmqs(queries, f_at, dropped)
    torch.testing.assert_close(out, hard_out)  # the same forward as the hard mask
    torch.testing.assert_close(weights, hard_weights)
    assert torch.equal(out[1], queries[1])  # nothing kept: exactly no update
    out.square().sum().backward()
    grad = scores.grad
    assert torch.isfinite(grad).all()
    assert grad[0, 1] != 0 and (grad[1] != 0).all()  # dropped cues learn whether keeping them helps
    assert grad[0, 3] == 0  # padding never does
