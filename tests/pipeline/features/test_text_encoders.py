import numpy as np
import pytest
import torch
from transformers import CLIPTextConfig, CLIPTextModelWithProjection

from pipeline.features.cue_embedding import CachedSentenceEncoder, embed_cues
from pipeline.config import ConfigError, load_config
from pipeline.features.backends import TEXT_ENCODERS
from pipeline.features.text_encoders import ImageBindEncoder, weights_sha256
from tests.pipeline.features.test_imagebind_text import (
    CONTEXT,
    EOT,
    HEADS,
    OUT,
    VOCAB,
    synthetic_imagebind_text,
    write_clip_tokenizer,
)


class CountingEncoder:
    name, dim = "count", 3

    def __init__(self):
        self.calls = []

    def provenance(self):
        return {}

    def encode_sentences(self, sentences):
        self.calls.append(list(sentences))
        return np.array([[len(s), i, 1.0] for i, s in enumerate(sentences)], np.float32)



def text_config(encoder: str, *overrides: str):
    return load_config(None, [f"features.text.encoder={encoder}", *overrides])


def test_padding_truncation_validity_and_dedupe():
    enc = CountingEncoder()
    emb, valid = embed_cues(enc, [["dog", "man"], [], ["dog", "a", "b", "c", "d"], ["man"]], n_t=4)
    assert emb.shape == (4, 4, 3) and emb.dtype == np.float32
    assert valid.tolist() == [[True, True, False, False], [False] * 4, [True] * 4, [True, False, False, False]]
    assert enc.calls == [["This is a dog.", "This is a man.", "This is a a.", "This is a b.", "This is a c."]]  # one call, "d" truncated
    np.testing.assert_array_equal(emb[0, 0], emb[2, 0])  # the same cue, embedded once, gathered twice
    np.testing.assert_array_equal(emb[3, 0], [len("This is a man."), 1, 1])
    assert not emb[1].any() and not emb[0, 2:].any()

    emb, valid = embed_cues(enc, [["dog", "cat"]], n_t=1, template="A photo of a {cue}")
    assert enc.calls[-1] == ["A photo of a dog"] and emb.shape == (1, 1, 3) and valid.tolist() == [[True]]
    emb, valid = embed_cues(enc, [[], []])
    assert emb.shape == (2, 4, 3) and not valid.any() and len(enc.calls) == 2  # nothing to embed, no call


def test_bad_input_is_a_clear_error():
    enc = CountingEncoder()
    with pytest.raises(ValueError, match="placeholder"):
        embed_cues(enc, [["dog"]], template="no slot")
    with pytest.raises(ValueError, match="non-empty strings"):
        embed_cues(enc, [["dog", " "]])
    with pytest.raises(ValueError, match="n_t"):
        embed_cues(enc, [["dog"]], n_t=0)

    class Short(CountingEncoder):
        def encode_sentences(self, sentences):
            return np.zeros((1, 3), np.float32)

    with pytest.raises(ValueError, match="returned"):
        embed_cues(Short(), [["dog", "cat"]])


def test_cache_embeds_each_sentence_once_per_run():
    cached = CachedSentenceEncoder(CountingEncoder())
    embed_cues(cached, [["dog", "cat"]])
    embed_cues(cached, [["cat", "bell"]])
    assert cached.encoded == 3


def test_bundled_minilm_runs_offline_and_means_something():
    enc = TEXT_ENCODERS.get("sentence-transformers").build(load_config(None))
    v = enc.encode_sentences(["This is a dog.", "This is a puppy.", "This is a piano."])
    assert v.shape == (3, 384) and v.dtype == np.float32 and enc.dim == 384
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)  # the model ends in a Normalize layer
    cos = lambda a, b: float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
    assert cos(v[0], v[1]) > cos(v[0], v[2])
    prov = enc.provenance()
    assert prov["encoder"] == "sentence-transformers" and prov["path"].endswith("model") and len(prov["weights_sha256"]) == 64


def test_clip_text_model_folder(tmp_path):
    write_clip_tokenizer(tmp_path)
    cfg = CLIPTextConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         max_position_embeddings=CONTEXT, projection_dim=OUT, bos_token_id=VOCAB - 2, eos_token_id=EOT, pad_token_id=EOT)
    torch.manual_seed(0)
    CLIPTextModelWithProjection(cfg).save_pretrained(tmp_path)

    enc = TEXT_ENCODERS.get("clip").build(text_config("clip", f"features.text.path={tmp_path}", "features.text.batch_size=2"))
    v = enc.encode_sentences(["This is a dog.", "This is a cat.", "This is a dog."])
    assert v.shape == (3, OUT) and v.dtype == np.float32 and enc.dim == OUT
    np.testing.assert_allclose(v[0], v[2], atol=1e-6)  # batches of 2: padding and batch boundaries change nothing
    assert not np.allclose(v[0], v[1])
    emb, valid = embed_cues(enc, [["dog", "cat", "bell"]], n_t=4)
    assert emb.shape == (1, 4, OUT) and valid.tolist() == [[True, True, True, False]]
    assert enc.provenance()["weights_sha256"] == weights_sha256(tmp_path / "model.safetensors")


def test_imagebind_backend_from_a_checkpoint(tmp_path):
    torch.save(synthetic_imagebind_text(), tmp_path / "imagebind_huge.pth")
    write_clip_tokenizer(tmp_path / "tok")
    enc = ImageBindEncoder(str(tmp_path / "imagebind_huge.pth"), str(tmp_path / "tok"), num_heads=HEADS, batch_size=1)
    emb, valid = embed_cues(enc, [["dog", "cat"], ["dog"]], n_t=3)
    assert emb.shape == (2, 3, OUT) and enc.dim == OUT and valid.tolist() == [[True, True, False], [True, False, False]]
    np.testing.assert_allclose(np.linalg.norm(emb[valid], axis=-1), 20.0, rtol=1e-5)  # unit vectors times the logit scale
    prov = enc.provenance()
    assert prov["encoder"] == "imagebind" and prov["weights_sha256"] == weights_sha256(tmp_path / "imagebind_huge.pth")


def test_clear_errors_for_missing_models(tmp_path):
    with pytest.raises(FileNotFoundError, match="CLIP model folder"):
        TEXT_ENCODERS.get("clip").build(text_config("clip"))
    with pytest.raises(FileNotFoundError, match="ImageBind weights file not found"):
        TEXT_ENCODERS.get("imagebind").build(text_config("imagebind"))
    with pytest.raises(FileNotFoundError, match="sentence-transformers model folder"):
        TEXT_ENCODERS.get("sentence-transformers").build(text_config("sentence-transformers", f"features.text.path={tmp_path / 'absent'}"))
    with pytest.raises(ConfigError, match="unknown text encoder 'word2vec'"):
        text_config("word2vec")
    with pytest.raises(FileNotFoundError, match="no weight files"):
        weights_sha256(tmp_path)
