"""`teso demo` end to end on a tiny synthetic dataset: every stage, two runs trained and evaluated
under normal and muted audio, the report's files and tables; a second run recomputes nothing."""
import json

import pytest
from PIL import Image

from flows.demo import demo_flow
from pipeline.evaluation.report import cross_run_size
from tests.fixtures.configs import tiny_config


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo")
    cfg = tiny_config(tmp)
    with pytest.warns(UserWarning):  # too few videos for the V3 k-shot splits
        first = demo_flow(cfg)
    return cfg, tmp, first


def test_demo_writes_the_report_with_every_table_and_picture(demo):
    cfg, tmp, first = demo
    report = tmp / "report"
    assert {p.name for p in report.iterdir()} == {"report.md", "report.html", "report.json", "curves.png", "grids", "cross_run_grids.png"}
    assert len(list((report / "grids").glob("*.png"))) == 2
    # the same frames in both runs: frame | ground truth | normal and muted per run, one row per frame
    indexes = [json.loads((tmp / "runs" / name / "eval" / "grids" / "masks" / "index.json").read_text()) for name in ("teso", "no_audio")]
    assert len(indexes[0]["frames"]) == 2 and indexes[0]["frames"] == indexes[1]["frames"]
    assert Image.open(report / "cross_run_grids.png").size == cross_run_size(2, 2 + 2 * 2)
    md = (report / "report.md").read_text()
    for title in ("Table 1", "Table 3", "Table 4", "Table 5"):
        assert title in md
    html = (report / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 4 and "src=\"grids/" not in html  # self-contained
    data = json.loads((report / "report.json").read_text())
    assert list(data["runs"]) == ["teso", "no_audio"]
    t4 = data["tables"]["table4"]["rows"]
    assert [r[:2] for r in t4] == [["teso", "normal"], ["teso", "muted"], ["no_audio", "normal"], ["no_audio", "muted"]]
    assert t4[3][4] == "+0.0%"  # a model without audio cannot change when the audio is muted
    t1 = data["tables"]["table1"]
    assert t1["header"][1:5] == ["S4 (v1s) mIoU", "S4 (v1s) F", "MS3 (v1m) mIoU", "MS3 (v1m) F"]
    for name in ("teso", "no_audio"):
        assert (tmp / "runs" / name / "best" / "model.safetensors").exists()
        assert set(first["runs"][name]) == {"normal", "mute"}


def test_second_demo_reuses_every_cache(demo):
    cfg, tmp, first = demo
    stamp = (tmp / "runs" / "teso" / "eval" / "metrics.json").stat().st_mtime_ns
    again = demo_flow(cfg)
    assert (tmp / "runs" / "teso" / "eval" / "metrics.json").stat().st_mtime_ns == stamp  # evaluation reused
    assert again["runs"] == first["runs"]
    summary = json.loads((tmp / "runs" / "teso" / "summary.json").read_text())
    assert summary["global_step"] > 0
    for stages in again["stages"].values():  # per distinct data configuration of the runs
        assert stages["captions"]["computed"] == 0 and stages["cues"]["computed"] == 0
        assert all(s["computed"] == 0 for s in stages["features"].values())
