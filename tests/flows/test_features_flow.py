"""Features flow end to end: logmel audio for each condition and MiniLM cue embeddings for every
frame of the demo-style pipeline; a re-run computes nothing."""
import numpy as np
import pytest

from flows.captions import captions_flow
from flows.cues import cues_flow
from flows.features import features_flow
from pipeline.config import load_config
from pipeline.stages.lineage import audio_store, text_keys, text_store
from pipeline.stages.lineage import load_manifest
from pipeline.stages.manifest import run_manifest
from pipeline.data.synth import SynthConfig, generate

VIDEOS = {"v1s": {"train": 2, "val": 1, "test": 0}, "v1m": {"train": 1, "val": 0, "test": 0}, "v2": {"train": 1, "val": 0, "test": 0}}


def indexed(cfg):
    """The ok manifest rows, after indexing the folder (reading the manifest never indexes)."""
    run_manifest(cfg)
    return load_manifest(cfg)


def test_features_for_every_row_and_condition(tmp_path):
    with pytest.warns(UserWarning):
        generate(tmp_path / "data", SynthConfig(seed=2, size=48, videos=VIDEOS, workers=1), progress=False)
    cfg = load_config(None, [
        f"dataset.root={tmp_path / 'data'}", f"cache.root={tmp_path / 'cache'}", "run.progress=false",
        "features.audio.conditions=[{name: normal, kind: normal}, {name: mute, kind: mute}, {name: wgn10, kind: wgn, snr_db: 10}]",
    ])
    captions_flow(cfg)
    cues_flow(cfg)
    summaries = features_flow(cfg)
    manifest = indexed(cfg).to_pylist()
    # audio is keyed by the soundtrack's content hash, text by the hash of the caption its cues came from
    videos = {(r["dataset"], r["subset"], r["uid"], r["audio_sha"]) for r in manifest}
    frames = set(text_keys(cfg).values())
    assert {f[:4] for f in frames} == {(r["dataset"], r["subset"], r["uid"], r["frame"]) for r in manifest}
    stores = {s.name: audio_store(cfg, s) for s in cfg.features.audio.conditions}
    for name, store in stores.items():
        assert set(store.keys()) == videos, name
    key = sorted(videos)[0]
    seconds = 10 if key[1] == "v2" else 5
    normal, mute, noisy = (stores[n].get(key) for n in ("normal", "mute", "wgn10"))
    assert normal.shape == (seconds, 128) and not np.allclose(normal, mute) and not np.allclose(normal, noisy)
    text = text_store(cfg)
    assert set(text.keys()) == frames
    some = sorted(frames)[0]
    assert text.get(some).shape == (4, 384) and text.get_valid(some).dtype == bool
    assert all(s.computed == s.total for s in summaries)
    again = features_flow(cfg)
    assert all(s.computed == 0 and not s.model_loaded for s in again)
