"""The training recipe on a tiny Mask2Former and tiny JPEG/PNG data: learning, checkpoints, exact resume,
best-epoch selection, and two gloo DDP processes against one process."""
import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from model.data import AVSFrameDataset, FrameSample
from model.checkpoints import latest_checkpoint
from model.train import TrainConfig, train
from tests.fixtures.tiny_mask2former import make_tiny_mask2former, tiny_teso_config

SIZE, N_T, TEXT = 64, 4, 24
REPO = Path(__file__).resolve().parents[2]


def write_samples(root: Path, n: int, seed: int = 0) -> list[FrameSample]:
    """n one-frame videos: a bright box (the sounding object) on dark noise, its mask, one per frame."""
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(n):
        folder = root / f"vid{i}"
        folder.mkdir(parents=True)
        image = rng.integers(0, 60, (SIZE, SIZE, 3), dtype=np.uint8)
        mask = np.zeros((SIZE, SIZE), dtype=np.uint8)
        top, left = rng.integers(4, 28, 2)
        image[top : top + 24, left : left + 24] = rng.integers(150, 255, 3, dtype=np.uint8)
        mask[top : top + 24, left : left + 24] = 1
        Image.fromarray(image).save(folder / "0.jpg", quality=95)
        Image.fromarray(mask).save(folder / "0.png")
        samples.append(FrameSample(f"vid{i}", "v1s", 0, str(folder / "0.jpg"), str(folder / "0.png"), True, i, i))
    return samples


def features(n: int, seed: int = 0) -> tuple[dict, dict]:
    rng = np.random.default_rng(seed + 1)
    audio = {i: rng.standard_normal((5, 128)).astype(np.float32) for i in range(n)}
    valid = np.array([True, True, True, False])
    text = {i: (rng.standard_normal((N_T, TEXT)).astype(np.float32), valid) for i in range(n)}
    return audio, text


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    samples = write_samples(root / "data", 8)
    audio, text = features(8)
    dataset = AVSFrameDataset(samples, audio.__getitem__, text.__getitem__, image_size=SIZE, train=True, seed=0)
    return tiny_teso_config(make_tiny_mask2former(root / "m2f")), dataset


def config(out_dir: Path, **overrides) -> TrainConfig:
    base = dict(epochs=2, batch_size=2, grad_accum=1, num_workers=0, seed=0, out_dir=str(out_dir), log_every=1,
                image_size=SIZE, device="cpu")
    return TrainConfig(**{**base, **overrides})


def read_records(out_dir: Path, kind: str) -> list[dict]:
    lines = (out_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == kind]


def test_loss_falls_and_files_are_written(setup, tmp_path):
    model_cfg, dataset = setup
    result = train(model_cfg, config(tmp_path, epochs=5, keep_checkpoints=2), dataset)
    losses = result.step_losses
    assert len(losses) == 20 and result.global_step == 20
    assert np.mean(losses[-4:]) < np.mean(losses[:4]) - 0.5, losses

    ckpt = tmp_path / "checkpoints"
    assert (ckpt / "last").read_text().strip() == "epoch-5"
    assert sorted(p.name for p in ckpt.iterdir()) == ["epoch-4", "epoch-5", "last"]  # older ones pruned
    assert sorted(p.name for p in (ckpt / "epoch-5").iterdir()) == [
        "model.safetensors", "optimizer.pt", "rng.pt", "state.json"
    ]
    state = json.loads((ckpt / "epoch-5" / "state.json").read_text())
    assert (state["epoch"], state["global_step"], state["model_config"]) == (5, 20, model_cfg.to_dict())
    weights = load_file(str(ckpt / "epoch-5" / "model.safetensors"))
    assert weights.keys() == result.model.trainable_state_dict().keys()
    assert not (tmp_path / "best").exists()  # nothing validated, nothing selected

    steps, epochs = read_records(tmp_path, "step"), read_records(tmp_path, "epoch")
    assert [r["step"] for r in steps] == list(range(1, 21)) and [r["epoch"] for r in epochs] == [1, 2, 3, 4, 5]
    assert [r["loss"] for r in steps] == pytest.approx(losses)
    assert {"loss_mask", "loss_dice", "loss_cross_entropy", "loss_infonce"} <= steps[0].keys()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["global_step"] == 20 and summary["best_epoch"] is None


def test_semantic_labels_train_with_one_mask_per_class(setup, tmp_path):
    model_cfg, dataset = setup
    semantic = AVSFrameDataset(dataset.samples, dataset.audio_lookup, dataset.text_lookup, image_size=SIZE,
                               train=True, num_labels=3)
    cfg = tiny_teso_config(model_cfg.foundation, num_labels=3)
    result = train(cfg, config(tmp_path, epochs=1), semantic)
    assert result.model.mask2former.class_predictor.out_features == 4 and len(result.step_losses) == 4
    assert all(np.isfinite(result.step_losses))


class Crash(Exception):
    pass


def test_resume_after_interruption_repeats_the_uninterrupted_run(setup, tmp_path):
    model_cfg, dataset = setup
    # 8 samples in micro-batches of 2, accumulated in pairs: every epoch has two optimizer steps, and
    # dropout, point sampling and augmentation all draw random numbers that resume must restore.
    # The cosine schedule too: its rate is a function of the global step, which resume restores.
    cfg = dict(epochs=3, grad_accum=2, keep_checkpoints=0, lr_schedule="cosine", warmup_steps=1)
    whole = train(model_cfg, config(tmp_path / "whole", **cfg), dataset, validate=lambda m, v: {"miou": 0.0})

    calls = []

    def crash_in_epoch_two(model, val_set):
        calls.append(1)
        if len(calls) == 2:  # epoch 2 trained, its checkpoint not yet written
            raise Crash
        return {"miou": 0.0}

    with pytest.raises(Crash):
        train(model_cfg, config(tmp_path / "cut", **cfg), dataset, validate=crash_in_epoch_two)
    assert latest_checkpoint(tmp_path / "cut").name == "epoch-1"
    torch.manual_seed(1234)  # a fresh process would not share the crashed run's RNG state either
    resumed = train(model_cfg, config(tmp_path / "cut", **cfg), dataset, validate=lambda m, v: {"miou": 0.0})

    assert resumed.start_epoch == 1 and resumed.global_step == whole.global_step == 6
    np.testing.assert_allclose(resumed.step_losses, whole.step_losses[2:], rtol=1e-6)
    final_whole, final_resumed = whole.model.trainable_state_dict(), resumed.model.trainable_state_dict()
    for name, value in final_whole.items():
        torch.testing.assert_close(final_resumed[name], value, rtol=1e-6, atol=1e-6)
    # The log of the crashed epoch was dropped and redone: both logs tell the same story.
    for kind in ("step", "epoch"):
        a, b = read_records(tmp_path / "whole", kind), read_records(tmp_path / "cut", kind)
        assert [(r["epoch"], r["step"]) for r in a] == [(r["epoch"], r["step"]) for r in b]
        np.testing.assert_allclose([r["loss"] for r in a], [r["loss"] for r in b], rtol=1e-6)
    assert [r["lr"] for r in read_records(tmp_path / "cut", "step")] == [r["lr"] for r in read_records(tmp_path / "whole", "step")]

    # Nothing left to do: a finished run resumes to its final weights without training.
    again = train(model_cfg, config(tmp_path / "cut", **cfg), dataset)
    assert again.step_losses == [] and again.global_step == 6
    torch.testing.assert_close(again.model.trainable_state_dict(), final_whole)


def test_resume_refuses_another_model_config(setup, tmp_path):
    model_cfg, dataset = setup
    train(model_cfg, config(tmp_path, epochs=1), dataset)
    other = tiny_teso_config(model_cfg.foundation, use_dynamic_mask=False)
    with pytest.raises(ValueError, match="use_dynamic_mask"):
        train(other, config(tmp_path, epochs=2), dataset)


def test_best_epoch_is_kept_by_the_selected_metric(setup, tmp_path):
    model_cfg, dataset = setup
    scores = iter([0.2, 0.6, 0.4])
    seen = []

    def validate(model, val_set):
        seen.append((model.training, torch.is_grad_enabled(), val_set))
        return {"miou": next(scores), "fscore": 0.0}

    result = train(model_cfg, config(tmp_path, epochs=3, keep_checkpoints=0), dataset, "VAL", validate)
    assert seen == [(False, False, "VAL")] * 3
    assert (result.best_epoch, result.best_metric) == (2, 0.6)
    best = json.loads((tmp_path / "best" / "state.json").read_text())
    assert best["epoch"] == 2 and best["metrics"] == {"miou": 0.6, "fscore": 0.0}
    best_weights = load_file(str(tmp_path / "best" / "model.safetensors"))
    epoch2 = load_file(str(tmp_path / "checkpoints" / "epoch-2" / "model.safetensors"))
    epoch3 = load_file(str(tmp_path / "checkpoints" / "epoch-3" / "model.safetensors"))
    assert all(torch.equal(best_weights[k], epoch2[k]) for k in epoch2)
    assert not all(torch.equal(best_weights[k], epoch3[k]) for k in epoch3)
    assert [r["best"] for r in read_records(tmp_path, "epoch")] == [True, True, False]
    with pytest.raises(ValueError, match="selected metric 'miou'"):
        train(model_cfg, config(tmp_path / "x", epochs=1), dataset, None, lambda m, v: {"iou": 1.0})


def test_bad_settings_are_refused(setup, tmp_path):
    model_cfg, dataset = setup
    with pytest.raises(ValueError, match="batch_size must be > 0"):
        config(tmp_path, batch_size=0)
    unlabelled = AVSFrameDataset(
        [FrameSample(**{**asdict(s), "has_mask": False, "mask_path": None}) for s in dataset.samples],
        dataset.audio_lookup, dataset.text_lookup, image_size=SIZE,
    )
    with pytest.raises(ValueError, match="build_training_samples"):
        train(model_cfg, config(tmp_path, epochs=1), unlabelled)


# --- DDP: two gloo processes vs one process with the same global batch ---

DDP_SCRIPT = r'''
"""Train the tiny TeSO on the test's data, under torchrun or alone. argv: data.json out_dir."""
import json, os, sys
import numpy as np, torch
from model.data import AVSFrameDataset, FrameSample
from model.train import TrainConfig, train
from tests.fixtures.tiny_mask2former import tiny_teso_config

torch.set_num_threads(1)
spec = json.loads(open(sys.argv[1]).read())
feats = np.load(spec["features"])
audio = {i: feats["audio"][i] for i in range(len(spec["samples"]))}
text = {i: (feats["cues"][i], feats["valid"][i]) for i in range(len(spec["samples"]))}
samples = [FrameSample(**s) for s in spec["samples"]]
dataset = AVSFrameDataset(samples, audio.__getitem__, text.__getitem__, image_size=64, train=True, seed=0)

# Mask2Former's matcher and loss draw random points per mask, so their draws depend on how a batch is
# split across processes. Both runs use one fixed point set for every mask instead.
real_rand = torch.rand
def fixed_rand(*size, **kwargs):
    shape = tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list, torch.Size)) else size
    g = torch.Generator().manual_seed(0)
    row = real_rand(shape[1:] if shape else (), generator=g, dtype=kwargs.get("dtype"))
    return row.expand(shape).clone().to(kwargs.get("device") or "cpu")
torch.rand = fixed_rand

rank = int(os.environ.get("RANK", "0"))
out = os.path.join(sys.argv[2], f"rank{rank}")  # only rank 0 may leave files behind
model_cfg = tiny_teso_config(spec["foundation"], audio_dropout=0.0)
cfg = TrainConfig(epochs=2, batch_size=2, grad_accum=2, num_workers=0, seed=0, out_dir=out, log_every=1,
                  image_size=64, device="cpu")
result = train(model_cfg, cfg, dataset, resume=False)
if rank == 0:
    weights = {k: v.tolist() for k, v in result.model.trainable_state_dict().items()}
    with open(os.path.join(sys.argv[2], "result.json"), "w") as fh:
        json.dump({"losses": result.step_losses, "weights": weights}, fh)
'''


@pytest.mark.timeout(180)  # ~20 s here: three interpreter starts dominate
def test_ddp_two_gloo_processes_match_one_process(setup, tmp_path):
    model_cfg, dataset = setup
    # A foundation without stochastic depth (Swin's drop_path_rate defaults to 0.1 and is active in
    # training mode); with audio dropout off and fixed loss points no randomness depends on the split.
    foundation = Path(shutil.copytree(model_cfg.foundation, tmp_path / "m2f"))
    cfg_json = json.loads((foundation / "config.json").read_text())
    cfg_json["backbone_config"]["drop_path_rate"] = 0.0
    (foundation / "config.json").write_text(json.dumps(cfg_json))
    n = len(dataset)
    np.savez(
        tmp_path / "features.npz",
        audio=np.stack([dataset.audio_lookup(i) for i in range(n)]),
        cues=np.stack([dataset.text_lookup(i)[0] for i in range(n)]),
        valid=np.stack([dataset.text_lookup(i)[1] for i in range(n)]),
    )
    spec = {"foundation": str(foundation), "features": str(tmp_path / "features.npz"),
            "samples": [asdict(s) for s in dataset.samples]}
    (tmp_path / "data.json").write_text(json.dumps(spec))
    script = tmp_path / "ddp_train.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    torchrun = Path(sys.executable).parent / "torchrun"
    runs = {}
    for name, launcher in {
        "ddp": [str(torchrun), "--standalone", "--nproc_per_node", "2"],
        "single": [sys.executable],
    }.items():
        out = tmp_path / name
        proc = subprocess.run([*launcher, str(script), str(tmp_path / "data.json"), str(out)],
                              env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs[name] = json.loads((out / "result.json").read_text())

    ddp, single = runs["ddp"], runs["single"]
    assert len(ddp["losses"]) == len(single["losses"]) == 4
    np.testing.assert_allclose(ddp["losses"], single["losses"], rtol=1e-4)
    # Adam divides each update by the gradient's running RMS, so a weight whose gradient is only float
    # noise (an attention key bias: softmax ignores a constant added to all of a query's logits) moves
    # by a noise-driven fraction of lr that differs between 1 and 2 processes: compare at 5% of lr.
    for name, value in single["weights"].items():
        np.testing.assert_allclose(ddp["weights"][name], value, rtol=1e-3, atol=5e-5, err_msg=name)
    assert not (tmp_path / "ddp" / "rank1").exists()  # rank 1 wrote nothing
    assert (tmp_path / "ddp" / "rank0" / "checkpoints" / "epoch-2" / "model.safetensors").exists()
    assert len(torch.load(tmp_path / "ddp" / "rank0" / "checkpoints" / "epoch-2" / "rng.pt")) == 2


def test_config_check_on_resume_knows_settings_added_since_a_checkpoint():
    from model.checkpoints import _config_mismatch

    frozen = tiny_teso_config("m2f")
    old = {k: v for k, v in frozen.to_dict().items() if k not in ("frozen_foundation_mode", "infonce_symmetric")}
    # a frozen foundation ran in train mode before the setting existed: eval mode is another model
    assert [m.split(":")[0] for m in _config_mismatch(old, frozen)] == ["frozen_foundation_mode"]
    assert _config_mismatch(old, tiny_teso_config("m2f", frozen_foundation_mode="train")) == []
    trained = tiny_teso_config("m2f", freeze_foundation=False)  # the mode has no effect on a trained foundation
    assert _config_mismatch({k: v for k, v in old.items()} | {"freeze_foundation": False}, trained) == []


def test_lr_factor_schedules():
    from model.config import lr_factor

    assert [lr_factor("constant", s, 10) for s in (0, 5, 9)] == [1.0, 1.0, 1.0]
    warm = [lr_factor("cosine", s, 100, warmup_steps=4) for s in range(4)]
    assert warm == [0.25, 0.5, 0.75, 1.0]
    decay = [lr_factor("cosine", s, 100, warmup_steps=4, min_ratio=0.1) for s in range(4, 100)]
    assert decay[0] == pytest.approx(1.0) and all(a >= b for a, b in zip(decay, decay[1:]))
    assert lr_factor("cosine", 100, 100, 4, 0.1) == pytest.approx(0.1)  # the end of the schedule
    assert lr_factor("cosine", 52, 100, 4, 0.0) == pytest.approx(0.5)  # halfway after the warm-up


def test_cosine_schedule_reaches_the_optimizer(setup, tmp_path):
    model_cfg, dataset = setup
    sched = dict(lr_schedule="cosine", warmup_steps=2, lr_min_ratio=0.0, epochs=2)
    train(model_cfg, config(tmp_path / "full", **sched), dataset)
    lrs = [r["lr"]["other"] for r in read_records(tmp_path / "full", "step")]
    base = TrainConfig().lr_other
    assert lrs[0] == pytest.approx(base / 2) and lrs[1] == pytest.approx(base)  # warm-up
    assert all(a >= b for a, b in zip(lrs[1:], lrs[2:])) and lrs[2] > lrs[3] and lrs[-1] < 0.2 * base


def test_unknown_lr_schedule_is_refused():
    with pytest.raises(ValueError, match="lr_schedule must be one of constant, cosine"):
        TrainConfig(lr_schedule="step")
