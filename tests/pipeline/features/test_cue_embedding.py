import numpy as np

from pipeline.features.cue_embedding import CachedSentenceEncoder, embed_cues


class CountingEncoder:
    name, dim = "count", 3

    def provenance(self):
        return {}

    def encode_sentences(self, sentences):
        return np.array([[len(s), i, 1.0] for i, s in enumerate(sentences)], np.float32)


def test_each_distinct_cue_is_embedded_once_per_run():
    cached = CachedSentenceEncoder(CountingEncoder())
    first, _ = embed_cues(cached, [["dog", "cat"]])
    second, valid = embed_cues(cached, [["cat", "bell"], []])
    assert cached.encoded == 3  # dog, cat, bell: "cat" came from the cache the second time
    np.testing.assert_array_equal(first[0, 1], second[0, 0])
    assert valid[1].tolist() == [False] * 4
