"""Caches -> TeSO training -> evaluation, end to end on a tiny synthetic dataset and a tiny random
Mask2Former loaded through from_pretrained (the same path as the real hub id)."""
import json

import numpy as np
import pytest

from pipeline.config import load_config
from pipeline.stages.evaluate import run_eval
from pipeline.stages import captions, cues
from pipeline.stages.lineage import TEXT_KEY_FIELDS, audio_store, metrics_table, text_keys, text_store
from pipeline.features.backends import AUDIO_ENCODERS
from pipeline.stages.features import audio_batch, audio_videos
from pipeline.data.synth import SynthConfig, generate
from pipeline.stages.manifest import run_manifest
from pipeline.stages.train import run_training
from pipeline.store.sql_views import connect
from tests.fixtures.tiny_mask2former import make_tiny_mask2former

VIDEOS = {"v1s": {"train": 4, "val": 2, "test": 2}, "v1m": {"train": 0, "val": 0, "test": 0}, "v2": {"train": 0, "val": 0, "test": 0}}
TEXT_DIM = 24


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stage")
    root = tmp / "data"
    with pytest.warns(UserWarning):  # too small for the V3 k-shot splits
        generate(root, SynthConfig(seed=5, size=48, videos=VIDEOS, workers=1), progress=False)
    foundation = make_tiny_mask2former(tmp / "m2f")
    model = {
        "foundation": foundation, "d_model": 32, "n_latent": 4, "n_sedam_layers": 2, "n_heads": 4,
        "train_num_points": 256, "audio_dropout": 0.0,
    }
    cfg = load_config(None, [
        f"dataset.root={root}", f"cache.root={tmp / 'cache'}", "run.progress=false",
        "dataset.subsets=[v1s]",
        "features.audio.conditions=[{name: normal, kind: normal}, {name: mute, kind: mute}]",
        f"train.out_dir={tmp / 'run'}", "train.image_size=64",
        "train.recipe={epochs: 2, batch_size: 2, num_workers: 0, device: cpu, log_every: 1}",
        "eval.conditions=[normal, mute]", "eval.grids=2",
    ])
    cfg.train.model = model
    run_manifest(cfg)
    # audio features through the real logmel encoder, one store per condition
    encoder = AUDIO_ENCODERS.get("logmel").build(cfg)
    for spec in cfg.features.audio.conditions:
        rows, arrays = audio_batch(cfg, spec.name, encoder, audio_videos(cfg))
        audio_store(cfg, spec).write(rows, arrays)
    # captions and cues on CPU (reference descriptions, noun parser), then a fixed random embedding
    # per frame's cues (the text encoders are tested on their own)
    captions.STAGE.run(cfg)
    cues.STAGE.run(cfg)
    rng = np.random.default_rng(0)
    rows, arrays = [], []
    for key in text_keys(cfg).values():
        key = dict(zip([k for k, _ in TEXT_KEY_FIELDS], key))
        rows.append({**key, "kind": "text", "variant": "t", "encoder": "random", "weights": "none", "valid": [True, True, False, False]})
        arrays.append(rng.normal(size=(4, TEXT_DIM)).astype(np.float32))
    text_store(cfg).write(rows, arrays)
    return cfg


def test_train_then_resume_is_a_no_op(cfg):
    result, skipped = run_training(cfg)
    assert skipped == 0 and result.global_step > 0 and len(result.epoch_losses) == 2
    assert np.isfinite(result.epoch_losses).all()
    assert (cfg.train.out_dir / "best" / "model.safetensors").exists()
    assert (cfg.train.out_dir / "config.yaml").exists()
    again, _ = run_training(cfg)  # every epoch is checkpointed: nothing left to train
    assert again.start_epoch == 2 and again.epoch_losses == []


def test_eval_writes_metrics_for_every_condition(cfg):
    results = run_eval(cfg)
    for name in ("normal", "mute"):
        r = results["conditions"][name]
        assert 0.0 <= r["miou"] <= 1.0 and 0.0 <= r["fscore"] <= 1.0 and r["frames"] > 0
    assert "miou_drop" in results["conditions"]["mute"]
    out = cfg.train.out_dir / "eval"
    assert json.loads((out / "metrics.json").read_text())["conditions"].keys() == {"normal", "mute"}
    grids = sorted((out / "grids").glob("*.png"))
    assert len(grids) == 2
    got = connect(cfg.cache.root).execute("SELECT condition, metric FROM metrics WHERE metric IN ('miou', 'fscore') ORDER BY ALL").fetchall()
    assert got == [("mute", "fscore"), ("mute", "miou"), ("normal", "fscore"), ("normal", "miou")]
    assert len(metrics_table(cfg)) >= 4
    by_subset = results["conditions"]["normal"]["by_subset"]
    assert set(by_subset) == {"v1s"} and by_subset["v1s"]["miou"] == pytest.approx(results["conditions"]["normal"]["miou"])
    stamp = (out / "metrics.json").stat().st_mtime_ns
    again = run_eval(cfg)  # same weights, settings and features: the earlier results are reused
    assert again["reused"] and again["conditions"] == json.loads(json.dumps(results["conditions"]))
    assert (out / "metrics.json").stat().st_mtime_ns == stamp
    other = cfg.model_copy(deep=True)
    other.eval.threshold = 0.5
    assert "reused" not in run_eval(other)  # another threshold is another evaluation


def test_semantic_model_with_the_baseline_cue_filter(cfg, tmp_path):
    semantic = cfg.model_copy(deep=True)
    semantic.train.model = {**cfg.train.model, "num_labels": 11}  # background + the 10 synthetic classes
    semantic.train.out_dir = tmp_path / "semantic"
    semantic.train.recipe = {**cfg.train.recipe, "epochs": 1}
    semantic.train.val_split = None
    semantic.eval.cue_filter = True
    run_training(semantic)
    results = run_eval(semantic)
    r = results["conditions"]["normal"]
    assert {"miou", "fscore", "miou_nobg", "fscore_nobg", "per_class_miou"} <= set(r)
    assert 0.0 <= r["miou"] <= 1.0


def test_the_same_seed_and_thread_count_give_identical_metrics(cfg, tmp_path):
    """What the README's numbers rest on: a training repeated with the same seed and torch thread
    count gives the same losses, validation scores and test metrics, to the last bit."""
    from pipeline.config import with_overrides

    runs = [with_overrides(cfg, [f"train.out_dir={tmp_path / name}", "train.recipe.seed=7"], "test") for name in ("a", "b")]
    trained = [run_training(r)[0] for r in runs]
    assert trained[0].epoch_losses == trained[1].epoch_losses and trained[0].val_history == trained[1].val_history
    metrics = [run_eval(r) for r in runs]
    for name in ("normal", "mute"):
        a, b = metrics[0]["conditions"][name], metrics[1]["conditions"][name]
        assert (a["miou"], a["fscore"]) == (b["miou"], b["fscore"])
    assert metrics[0]["cue_recognition"] == metrics[1]["cue_recognition"]


def test_a_replaced_test_soundtrack_is_evaluated_again(cfg):
    """Last in this module: it changes the dataset. The evaluation's identity includes the content
    hashes of the frames it scores, so the same weights on changed audio are not reused."""
    run_eval(cfg)
    assert run_eval(cfg)["reused"]
    test_dirs = sorted(p for p in (cfg.dataset.root / "v1s").iterdir() if "_test_" in p.name)
    train_dirs = sorted(p for p in (cfg.dataset.root / "v1s").iterdir() if "_train_" in p.name)
    (test_dirs[0] / "audio.wav").write_bytes((train_dirs[0] / "audio.wav").read_bytes())
    run_manifest(cfg)
    encoder = AUDIO_ENCODERS.get("logmel").build(cfg)
    for spec in cfg.features.audio.conditions:
        store = audio_store(cfg, spec)
        todo = store.table.missing(audio_videos(cfg))
        rows, arrays = audio_batch(cfg, spec.name, encoder, todo)
        store.write(rows, arrays)
        assert todo.num_rows == 1  # only the replaced soundtrack is encoded again
    assert "reused" not in run_eval(cfg)
