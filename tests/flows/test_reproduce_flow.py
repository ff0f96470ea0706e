"""`teso reproduce` end to end on the tiny config: every run at every seed trained and evaluated,
the claims report with verdicts computed from the saved numbers; a second run trains nothing."""
import json

import pytest

from flows.reproduce import reproduce_flow
from pipeline.evaluation.claims import NOT_RUN, check_claims
from tests.fixtures.configs import tiny_config


@pytest.mark.slow
def test_reproduce_on_the_tiny_config(tmp_path):
    cfg = tiny_config(tmp_path, f"train.out_dir={tmp_path / 'runs' / 'tiny'}")
    with pytest.warns(UserWarning):  # too few videos for the V3 k-shot splits
        first = reproduce_flow(cfg)
    for seed in (0, 1):
        for run in ("teso", "no_audio"):
            metrics = tmp_path / "runs" / "tiny" / f"seed{seed}" / run / "eval" / "metrics.json"
            assert json.loads(metrics.read_text())["conditions"].keys() == {"normal", "mute"}
    out = tmp_path / "reproduce"
    assert {p.name for p in out.iterdir()} == {"reproduce.md", "reproduce.html", "reproduce.json", "claims.png", "curves.png"}
    data = json.loads((out / "reproduce.json").read_text())
    assert data["seeds"] == [0, 1] and set(data["runs"]) == {"teso", "no_audio"}
    # the verdicts in the report are the ones the saved numbers give
    results = {run: {int(s): m for s, m in by_seed.items()} for run, by_seed in data["runs"].items()}
    again = check_claims(results, dict(cfg.reproduce.roles), "normal", "mute", {})
    assert [(c["id"], c["verdict"]) for c in again] == [(c["id"], c["verdict"]) for c in data["claims"]]
    assert {c["id"]: c["verdict"] for c in data["claims"]}["C2"] == NOT_RUN  # the tiny config has no (-) text run
    assert first["claims"] == {c["id"]: c["verdict"] for c in data["claims"]}
    html = (out / "reproduce.html").read_text()
    assert html.count("data:image/png;base64,") == 2 and "Claims (test split)" in html
    second = reproduce_flow(cfg)  # resumes every training at its last epoch and reuses every evaluation
    assert second["claims"] == first["claims"]
