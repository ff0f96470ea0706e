"""The ImageBind text converter on a synthetic state dict with ImageBind's key names and shapes
(tiny widths, random values), against a reference forward written from ImageBind's own modules:
TextPreprocessor, SimpleTransformer of BlockWithMasking (nn.MultiheadAttention, eps 1e-6),
SelectEOSAndProject, Normalize, LearnableLogitScaling."""
import math

import pytest
import torch
from torch.nn import functional as F
from transformers import CLIPTextModelWithProjection, CLIPTokenizer

from pipeline.features.imagebind_text import (
    ImageBindTextEncoder,
    ImageBindWeightsError,
    convert_imagebind_text,
    imagebind_text_config,
    imagebind_token_ids,
    load_imagebind_text,
)

WIDTH, LAYERS, HEADS, VOCAB, CONTEXT, OUT = 32, 2, 4, 100, 16, 24  # OUT != WIDTH catches a transposed projection
SOT, EOT = VOCAB - 2, VOCAB - 1
P, T, H = "modality_preprocessors.text.", "modality_trunks.text.blocks.", "modality_heads.text."


def synthetic_imagebind_text(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape: torch.randn(*shape, generator=g) * 0.3
    s = {
        P + "token_embedding.weight": r(VOCAB, WIDTH),
        P + "pos_embed": r(1, CONTEXT, WIDTH),
        P + "mask": torch.full((CONTEXT, CONTEXT), float("-inf")).triu(1),
        H + "proj.0.weight": 1 + r(WIDTH),
        H + "proj.0.bias": r(WIDTH),
        H + "proj.1.weight": r(OUT, WIDTH),
        "modality_postprocessors.text.1.log_logit_scale": torch.tensor(math.log(20.0)),
    }
    for i in range(LAYERS):
        b = f"{T}{i}."
        s |= {
            b + "attn.in_proj_weight": r(3 * WIDTH, WIDTH), b + "attn.in_proj_bias": r(3 * WIDTH),
            b + "attn.out_proj.weight": r(WIDTH, WIDTH), b + "attn.out_proj.bias": r(WIDTH),
            b + "norm_1.weight": 1 + r(WIDTH), b + "norm_1.bias": r(WIDTH),
            b + "norm_2.weight": 1 + r(WIDTH), b + "norm_2.bias": r(WIDTH),
            b + "mlp.fc1.weight": r(4 * WIDTH, WIDTH), b + "mlp.fc1.bias": r(4 * WIDTH),
            b + "mlp.fc2.weight": r(WIDTH, 4 * WIDTH), b + "mlp.fc2.bias": r(WIDTH),
        }
    return s


def imagebind_reference(s: dict[str, torch.Tensor], ids: torch.Tensor) -> torch.Tensor:
    """ImageBind's text forward on (B, CONTEXT) ids, as its modules compute it."""
    x = s[P + "token_embedding.weight"][ids] + s[P + "pos_embed"]  # (B, L, d)
    x = x.transpose(0, 1)  # (L, B, d): ImageBind's trunk runs sequence-first
    for i in range(LAYERS):
        b = f"{T}{i}."
        h = F.layer_norm(x, (WIDTH,), s[b + "norm_1.weight"], s[b + "norm_1.bias"], 1e-6)
        attn, _ = F.multi_head_attention_forward(
            h, h, h, WIDTH, HEADS, s[b + "attn.in_proj_weight"], s[b + "attn.in_proj_bias"], None, None, False, 0.0,
            s[b + "attn.out_proj.weight"], s[b + "attn.out_proj.bias"], training=False, need_weights=False, attn_mask=s[P + "mask"],
        )
        x = x + attn
        h = F.layer_norm(x, (WIDTH,), s[b + "norm_2.weight"], s[b + "norm_2.bias"], 1e-6)
        x = x + F.linear(F.gelu(F.linear(h, s[b + "mlp.fc1.weight"], s[b + "mlp.fc1.bias"])), s[b + "mlp.fc2.weight"], s[b + "mlp.fc2.bias"])
    x = x.transpose(0, 1)  # (B, L, d)
    pooled = x[torch.arange(ids.shape[0]), ids.argmax(dim=-1)]  # SelectEOSAndProject: EOT = largest id
    pooled = F.layer_norm(pooled, (WIDTH,), s[H + "proj.0.weight"], s[H + "proj.0.bias"], 1e-6)
    out = F.normalize(F.linear(pooled, s[H + "proj.1.weight"]), dim=-1)
    return s["modality_postprocessors.text.1.log_logit_scale"].exp().clamp(max=100) * out


def padded(rows: list[list[int]]) -> torch.Tensor:
    ids = torch.zeros(len(rows), CONTEXT, dtype=torch.long)  # ImageBind pads with 0 to its full context
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
    return ids


def write_clip_tokenizer(folder, vocab_size: int = VOCAB) -> None:
    """A tiny CLIP BPE tokenizer (letters, '.', a few merges) whose last two ids are SOT and EOT."""
    letters = "abcdefghijklmnopqrstuvwxyz."
    tokens = [*letters, *(c + "</w>" for c in letters), "th", "thi", "this</w>", "is</w>", "do", "dog</w>"]
    merges = [("t", "h"), ("th", "i"), ("thi", "s</w>"), ("i", "s</w>"), ("d", "o"), ("do", "g</w>")]
    tokens += [f"<unused{i}>" for i in range(vocab_size - 2 - len(tokens))] + ["<|startoftext|>", "<|endoftext|>"]
    CLIPTokenizer(vocab={t: i for i, t in enumerate(tokens)}, merges=merges).save_pretrained(str(folder))


def test_config_is_read_from_the_shapes():
    cfg = imagebind_text_config(synthetic_imagebind_text(), num_heads=HEADS)
    assert (cfg.vocab_size, cfg.hidden_size, cfg.intermediate_size, cfg.projection_dim) == (VOCAB, WIDTH, 4 * WIDTH, OUT)
    assert (cfg.num_hidden_layers, cfg.num_attention_heads, cfg.max_position_embeddings) == (LAYERS, HEADS, CONTEXT)
    assert (cfg.hidden_act, cfg.layer_norm_eps, cfg.eos_token_id) == ("gelu", 1e-6, EOT)
    with pytest.raises(ImageBindWeightsError, match="not divisible"):
        imagebind_text_config(synthetic_imagebind_text(), num_heads=5)


def test_converted_clip_model_reproduces_imagebind():
    state = synthetic_imagebind_text()
    cfg = imagebind_text_config(state, num_heads=HEADS)
    converted = convert_imagebind_text(state, cfg)

    clip = CLIPTextModelWithProjection(cfg).eval()
    result = clip.load_state_dict({k.removeprefix("clip."): v for k, v in converted.items() if k.startswith("clip.")}, strict=True)
    assert result.missing_keys == [] and result.unexpected_keys == []
    model = ImageBindTextEncoder(cfg).eval()
    result = model.load_state_dict(converted, strict=True)
    assert result.missing_keys == [] and result.unexpected_keys == []

    # EOT cut off as ImageBind truncates; ids without SOT/EOT, where only argmax pooling is ImageBind's
    rows = [[SOT, 5, 7, 9, EOT], [SOT, 11, EOT], [SOT, *range(20, 20 + CONTEXT - 1)], [5, 40, 7]]
    ids = padded(rows)
    want = imagebind_reference(state, ids)
    with torch.no_grad():
        torch.testing.assert_close(model(ids), want, atol=1e-5, rtol=1e-5)
        # the padding after EOT cannot matter (causal attention): the short rows alone, unpadded
        torch.testing.assert_close(model(torch.tensor([rows[0]])), want[:1], atol=1e-5, rtol=1e-5)
        # plain CLIP pools at the first EOT: the same embedding on every row that starts with SOT
        plain = F.normalize(clip(input_ids=ids[:3]).text_embeds, dim=-1) * 20.0
        torch.testing.assert_close(plain, want[:3], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(want[0], want[1], atol=1e-3)  # the reference is not degenerate


def test_load_from_a_full_checkpoint_and_tokenizer(tmp_path):
    state = synthetic_imagebind_text()
    other = {"modality_trunks.vision.blocks.0.norm_1.weight": torch.ones(8), "modality_heads.audio.0.weight": torch.ones(8)}
    torch.save(state | other, tmp_path / "imagebind_huge.pth")
    write_clip_tokenizer(tmp_path / "tok")

    model, tokenizer = load_imagebind_text(tmp_path / "imagebind_huge.pth", tmp_path / "tok", "cpu", num_heads=HEADS)
    ids = imagebind_token_ids(tokenizer, ["This is a dog.", "a b c d e f g h i j k l m n o p q"], CONTEXT)
    assert ids.shape == (2, CONTEXT)
    dog = tokenizer.convert_tokens_to_ids(["this</w>", "is</w>", "a</w>", "dog</w>", ".</w>"])
    assert ids[0].tolist() == [SOT, *dog, EOT] + [0] * (CONTEXT - 7)
    assert ids[1, 0] == SOT and EOT not in ids[1].tolist()  # cut at the context length like ImageBind's tokenizer
    with torch.no_grad():
        torch.testing.assert_close(model(ids), imagebind_reference(state, ids), atol=1e-5, rtol=1e-5)


def test_wrong_keys_are_a_clear_error():
    state = synthetic_imagebind_text()
    cfg = imagebind_text_config(state, num_heads=HEADS)
    broken = {k: v for k, v in state.items() if k != f"{T}1.norm_2.bias"} | {f"{T}1.attn.bias_k": torch.zeros(1, 1, WIDTH)}
    with pytest.raises(ImageBindWeightsError, match=r"missing \(1\): modality_trunks.text.blocks.1.norm_2.bias; unexpected \(1\): modality_trunks.text.blocks.1.attn.bias_k"):
        convert_imagebind_text(broken, cfg)
    with pytest.raises(ImageBindWeightsError, match="not a causal mask"):
        convert_imagebind_text(state | {P + "mask": torch.zeros(CONTEXT, CONTEXT)}, cfg)

    converted = convert_imagebind_text(state, cfg)
    model = ImageBindTextEncoder(cfg)
    with pytest.raises(ImageBindWeightsError, match=r"wrong shape \(1\): clip.text_projection.weight \(24, 16\) != \(24, 32\)"):
        model.load_exact(converted | {"clip.text_projection.weight": torch.zeros(OUT, 16)})
    with pytest.raises(ImageBindWeightsError, match=r"missing \(1\): log_logit_scale"):
        model.load_exact({k: v for k, v in converted.items() if k != "log_logit_scale"})


def test_clear_errors_for_missing_or_wrong_files(tmp_path):
    write_clip_tokenizer(tmp_path / "tok")
    with pytest.raises(FileNotFoundError, match="ImageBind weights file not found"):
        load_imagebind_text(tmp_path / "absent.pth", tmp_path / "tok")
    torch.save(synthetic_imagebind_text(), tmp_path / "ib.pth")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no CLIP BPE tokenizer"):
        load_imagebind_text(tmp_path / "ib.pth", tmp_path / "empty")
    torch.save({"modality_trunks.vision.blocks.0.norm_1.weight": torch.ones(8)}, tmp_path / "vision_only.pth")
    with pytest.raises(ImageBindWeightsError, match="no ImageBind text weights"):
        load_imagebind_text(tmp_path / "vision_only.pth", tmp_path / "tok")
    write_clip_tokenizer(tmp_path / "small_tok", vocab_size=VOCAB - 10)  # its end-of-text id is not the model's last id
    with pytest.raises(ValueError, match="tokenizer does not fit"):
        load_imagebind_text(tmp_path / "ib.pth", tmp_path / "small_tok", num_heads=HEADS)
