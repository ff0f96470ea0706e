import tracemalloc

import numpy as np
import pyarrow as pa
import pytest

from pipeline.store.feature_store import FeatureStore
from pipeline.store.sql_views import connect

AUDIO_KEYS = [("dataset", pa.string()), ("subset", pa.string()), ("uid", pa.string()), ("variant", pa.string())]


def store(root, inputs=None):
    return FeatureStore(root, "d", inputs or {"encoder": "logmel"}, AUDIO_KEYS)


def audio_rows(uids, variant="normal"):
    return [
        {"dataset": "d", "subset": "v1s", "uid": u, "kind": "audio", "variant": variant, "encoder": "logmel", "weights": "none"}
        for u in uids
    ]


def test_round_trip_and_error_rows(tmp_path):
    s = store(tmp_path)
    rng = np.random.default_rng(0)
    arrays = [rng.normal(size=(5, 128)).astype(np.float32) for _ in range(3)]
    s.write(audio_rows(["a", "b", "c"]), arrays)
    bad = audio_rows(["z"])
    bad[0]["error"] = "audio unreadable: /x.wav"
    s.write(bad, [None])
    reread = store(tmp_path)  # a fresh process would see the same
    for u, arr in zip("abc", arrays):
        got = reread.get(("d", "v1s", u, "normal"))
        np.testing.assert_array_equal(got, arr)
        assert isinstance(got, np.memmap) or isinstance(got.base, np.memmap)
    assert ("d", "v1s", "z", "normal") not in reread
    with pytest.raises(KeyError, match="no features"):
        reread.get(("d", "v1s", "z", "normal"))
    idx = connect(tmp_path).execute("SELECT uid, status, shape FROM features_index ORDER BY uid").fetchall()
    assert idx == [("a", "ok", [5, 128]), ("b", "ok", [5, 128]), ("c", "ok", [5, 128]), ("z", "error", None)]
    # every index row carries its provenance, as cache/README.md promises
    nulls = connect(tmp_path).execute(
        "SELECT count(*) FILTER (fingerprint IS NULL OR created_at IS NULL), min(fingerprint) FROM features_index").fetchone()
    assert nulls == (0, s.table.fingerprint)


def test_text_validity_mask(tmp_path):
    keys = [("dataset", pa.string()), ("subset", pa.string()), ("uid", pa.string()), ("frame", pa.int32())]
    s = FeatureStore(tmp_path, "d", {"encoder": "minilm"}, keys)
    row = {"dataset": "d", "subset": "v1s", "uid": "a", "frame": 0, "kind": "text", "variant": "t", "encoder": "m", "weights": "none", "valid": [True, True, False, False]}
    s.write([row], [np.ones((4, 8), np.float32)])
    assert s.get_valid(("d", "v1s", "a", 0)).tolist() == [True, True, False, False]
    assert s.table.read()["n_valid"].to_pylist() == [2]


def test_mixed_shapes_in_one_batch_go_to_separate_shards(tmp_path):
    s = store(tmp_path)
    s.write(audio_rows(["a", "b", "c"]), [np.zeros((5, 128)), np.ones((10, 128)), np.full((5, 128), 2.0)])
    assert [s.get(("d", "v1s", u, "normal")).shape for u in "abc"] == [(5, 128), (10, 128), (5, 128)]
    assert s.get(("d", "v1s", "c", "normal"))[0, 0] == 2.0
    assert len(list(s.shard_dir.glob("*.npy"))) == 2


def _read_peak(s, keys):
    s.keys()  # build the index outside the measured window
    tracemalloc.start()
    total = 0.0
    for k in keys:
        total += float(s.get(k)[0, 0])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def test_read_memory_does_not_grow_with_stored_videos(tmp_path):
    peaks = []
    for n in (50, 1000):
        s = store(tmp_path / str(n))
        for start in range(0, n, 250):
            uids = [f"u{i}" for i in range(start, min(n, start + 250))]
            s.write(audio_rows(uids), [np.full((10, 128), i, np.float32) for i in range(len(uids))])
        peaks.append(_read_peak(store(tmp_path / str(n)), [("d", "v1s", f"u{i}", "normal") for i in range(0, 50, 5)]))
    # reading 10 items costs the same whether 50 or 1000 videos (1000 x 5 KB) are stored
    assert peaks[1] < peaks[0] * 1.5 + 64 * 1024


def test_pickled_store_sends_paths_not_data(tmp_path):
    import pickle

    s = store(tmp_path)
    s.write(audio_rows(["a"]), [np.ones((10, 128), np.float32)])
    s.get(("d", "v1s", "a", "normal"))  # maps the shard in this process
    blob = pickle.dumps(s)
    assert len(blob) < 5000  # the 5 KB array is not in it
    np.testing.assert_array_equal(pickle.loads(blob).get(("d", "v1s", "a", "normal")), np.ones((10, 128)))
