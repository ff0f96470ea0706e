import numpy as np
import pytest

from pipeline.features_stage import CachedSentenceEncoder
from pipeline.text_features import build_text_encoder, embed_cues


class CountingEncoder:
    name, dim = "count", 3

    def __init__(self):
        self.calls = []

    def provenance(self):
        return {}

    def encode_sentences(self, sentences):
        self.calls.append(list(sentences))
        return np.array([[len(s), i, 1.0] for i, s in enumerate(sentences)], np.float32)


def test_padding_truncation_validity_and_dedupe():
    enc = CountingEncoder()
    emb, valid = embed_cues(enc, [["dog", "man"], [], ["dog", "a", "b", "c", "d"]], n_t=4)
    assert emb.shape == (3, 4, 3) and valid.tolist() == [[True, True, False, False], [False] * 4, [True] * 4]
    assert enc.calls == [["This is a dog.", "This is a man.", "This is a a.", "This is a b.", "This is a c."]]  # "d" truncated
    np.testing.assert_array_equal(emb[0, 0], emb[2, 0])  # the same cue, embedded once
    assert not emb[1].any()
    with pytest.raises(ValueError, match="placeholder"):
        embed_cues(enc, [["dog"]], template="no slot")


def test_cache_embeds_each_sentence_once_per_run():
    cached = CachedSentenceEncoder(CountingEncoder())
    embed_cues(cached, [["dog", "cat"]])
    embed_cues(cached, [["cat", "bell"]])
    assert cached.encoded == 3


def test_bundled_minilm_runs_offline_and_means_something():
    enc = build_text_encoder("sentence-transformers")
    v = enc.encode_sentences(["This is a dog.", "This is a puppy.", "This is a piano."])
    assert v.shape == (3, 384) and enc.dim == 384
    cos = lambda a, b: float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
    assert cos(v[0], v[1]) > cos(v[0], v[2])


def test_clear_errors_for_missing_models():
    with pytest.raises(FileNotFoundError, match="CLIP model folder"):
        build_text_encoder("clip", path=None)
    with pytest.raises(NotImplementedError, match="imagebind"):
        build_text_encoder("imagebind")
