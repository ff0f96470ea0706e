"""GAVS through the same commands as TeSO on the tiny config: it needs audio features only (no
captions, cues or text features), trains on the small random SAM and is evaluated under every
audio condition."""
import json
from pathlib import Path

import yaml

from flows.cli import main

REPO = Path(__file__).resolve().parents[2]


def test_gavs_trains_and_is_evaluated_from_audio_features_alone(tmp_path):
    sam = tmp_path / "sam"
    config = yaml.safe_load((REPO / "configs" / "tiny.yaml").read_text())
    config["train"]["model"] = {"architecture": "gavs", "foundation": str(sam), "freeze_foundation": False}
    config["runs"] = {}
    (tmp_path / "gavs.yaml").write_text(yaml.safe_dump(config))
    ov = [f"dataset.root={tmp_path / 'data'}", f"synth.out={tmp_path / 'data'}", f"cache.root={tmp_path / 'cache'}",
          f"foundation.sam_out={sam}", f"train.out_dir={tmp_path / 'runs'}"]
    for command in ("data synth", "index", "features", "train", "eval"):
        assert main([*command.split(), "--config", str(tmp_path / "gavs.yaml"), *ov]) == 0, command
    assert (sam / "config.json").exists()  # the run's own small SAM, built by `teso train`
    assert not list((tmp_path / "cache" / "tiny").glob("captions/*/part-*.parquet"))  # no caption was needed
    metrics = json.loads((tmp_path / "runs" / "eval" / "metrics.json").read_text())
    assert set(metrics["conditions"]) == {"normal", "mute"}
    assert 0 <= metrics["conditions"]["normal"]["miou"] <= 1
    state = json.loads(next((tmp_path / "runs").glob("checkpoints/*/state.json")).read_text())
    assert state["model_config"]["architecture"] == "gavs"


def test_an_image_size_the_small_sam_cannot_take_is_a_config_error(tmp_path, capsys):
    config = yaml.safe_load((REPO / "configs" / "tiny.yaml").read_text())
    config["train"]["model"] = {"architecture": "gavs", "foundation": "demo/tiny/foundation_sam"}
    (tmp_path / "gavs.yaml").write_text(yaml.safe_dump(config))
    assert main(["train", "--config", str(tmp_path / "gavs.yaml"), "train.image_size=96"]) == 2
    assert "foundation.sam_small.image_size 64" in capsys.readouterr().err
