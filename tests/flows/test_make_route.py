"""The README's step-by-step route, typed through the Makefile on the tiny config: each target
reuses what the previous one made, and the small random foundation is made by `make train`."""
import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROUTE = ["data", "captions", "cues", "features", "train", "eval", "report"]


@pytest.mark.slow
def test_make_route_on_the_tiny_config(tmp_path):
    overrides = [
        f"dataset.root={tmp_path / 'data'}", f"synth.out={tmp_path / 'data'}", f"cache.root={tmp_path / 'cache'}",
        f"foundation.out={tmp_path / 'foundation'}", f"train.model.foundation={tmp_path / 'foundation'}",
        f"train.out_dir={tmp_path / 'runs'}", f"report.out_dir={tmp_path / 'report'}",
    ]
    env = os.environ | {"PREFECT_HOME": str(tmp_path / "prefect")}
    done = subprocess.run(["make", "-C", str(REPO), *ROUTE, "CONFIG=configs/tiny.yaml", f"ARGS={' '.join(overrides)}"],
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (tmp_path / "foundation" / "config.json").exists()  # made by `make train`, not by hand
    for run in ("teso", "no_audio"):  # every run of the config, trained and evaluated
        metrics = json.loads((tmp_path / "runs" / run / "eval" / "metrics.json").read_text())
        assert set(metrics["conditions"]) == {"normal", "mute"}
    assert (tmp_path / "report" / "report.html").stat().st_size > 0
    # run.progress=false (the tiny config): no progress bar (tqdm's "NN%|") reached the terminal,
    # neither the stages', the training's nor transformers' weight loading
    assert "%|" not in done.stderr + done.stdout


def test_a_foundation_that_is_neither_a_folder_nor_a_hub_id_is_a_config_error(tmp_path):
    from flows.cli import main

    code = main(["train", "--config", "configs/tiny.yaml", f"dataset.root={tmp_path}",
                 "train.model.foundation=models/no/such/folder"])
    assert code == 2
