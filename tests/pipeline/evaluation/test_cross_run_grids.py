"""The grid frames' masks an evaluation saves (pipeline/evaluation/grids.py) and the report's figure
of the same frames across runs (pipeline/evaluation/report.py), on fake model outputs: no model."""
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.evaluation import report as rep
from pipeline.evaluation.grids import grid_picks, masks_index_path, read_masks_index, write_grid_masks, write_grids
from pipeline.model_io.inference import ConditionOutputs
from pipeline.stages.evaluate import _previous_results
from tests.fixtures.configs import tiny_config

SIZE = 16
# (subset, uid, frame, has_mask): video a's first frame has no mask, so its grid frame is a/1
FRAMES = [("v1s", "a", 0, False), ("v1s", "a", 1, True), ("v1s", "a", 2, True), ("v1m", "b", 0, True), ("v1m", "c", 0, True)]


def _dataset(tmp: Path):
    samples = []
    rng = np.random.default_rng(0)
    for subset, uid, frame, has_mask in FRAMES:
        path = tmp / "frames" / f"{subset}_{uid}_{frame}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(path)  # resized to SIZE on reading
        samples.append(SimpleNamespace(subset=subset, uid=uid, frame=frame, frame_path=str(path), has_mask=has_mask))
    return SimpleNamespace(samples=samples, image_size=SIZE)


def _outputs(seed: int) -> ConditionOutputs:
    g = torch.Generator().manual_seed(seed)
    out = ConditionOutputs()
    for subset, uid, frame, has_mask in FRAMES:
        out.scores.append(torch.rand(1, SIZE, SIZE, generator=g))
        out.gts.append((torch.rand(SIZE, SIZE, generator=g) > 0.7).long())
        out.has_mask.append(has_mask)
        out.keys.append((subset, uid, frame))
        out.cue_scores.append(None)
        out.cue_kept.append(None)
        out.heat.append(None)
    return out


def _mask(path: Path) -> np.ndarray:
    image = Image.open(path)
    assert image.mode == "L" and set(np.unique(np.asarray(image))) <= {0, 255}
    return np.asarray(image) == 255


def test_picks_are_the_first_masked_frame_of_the_first_videos():
    assert grid_picks(_outputs(0), 2) == [1, 3]
    assert grid_picks(_outputs(1), 10) == [1, 3, 4]  # the rule depends on the split only, not on the predictions


def test_masks_and_index_are_written_for_the_grid_frames(tmp_path):
    ds, normal, muted = _dataset(tmp_path), _outputs(0), _outputs(1)
    grids = write_grids(tmp_path / "grids", ds, normal, muted, 0.5, 2)
    index_path = write_grid_masks(tmp_path / "grids", ds, normal, muted, 0.5, 2, "normal", "mute")
    assert [g.name for g in grids] == ["v1s_a_1.png", "v1m_b_0.png"]
    assert index_path == masks_index_path(tmp_path / "grids") == tmp_path / "grids" / "masks" / "index.json"
    index = json.loads(index_path.read_text())
    assert read_masks_index(index_path) == index
    assert [(f["subset"], f["uid"], f["frame"]) for f in index["frames"]] == [("v1s", "a", 1), ("v1m", "b", 0)]
    assert [(m["uid"], m["frame"], m["condition"], m["role"]) for m in index["masks"]] == [
        ("a", 1, "normal", "normal"), ("a", 1, "mute", "muted"), ("b", 0, "normal", "normal"), ("b", 0, "mute", "muted")]
    assert index["threshold"] == 0.5 and index["reference_condition"] == "normal" and index["muted_condition"] == "mute"
    folder = index_path.parent
    for m in index["masks"]:  # lossless: exactly the thresholded prediction
        outputs, i = (normal if m["role"] == "normal" else muted), FRAMES.index((m["subset"], m["uid"], m["frame"], True))
        assert np.array_equal(_mask(folder / m["file"]), outputs.scores[i][0].numpy() > 0.5)
    for f in index["frames"]:
        i = FRAMES.index((f["subset"], f["uid"], f["frame"], True))
        assert np.array_equal(_mask(folder / f["gt"]), normal.gts[i].numpy() > 0)
        assert Image.open(folder / f["image"]).size == (SIZE, SIZE)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["index.json"] + [f[k] for f in index["frames"] for k in ("image", "gt")] + [m["file"] for m in index["masks"]])  # no temporary left
    # a second evaluation replaces the set as a whole: fewer frames, no muted condition, nothing stale
    again = write_grid_masks(tmp_path / "grids", ds, normal, None, 0.5, 1, "normal", None)
    index = json.loads(again.read_text())
    assert index["muted_condition"] is None and [m["role"] for m in index["masks"]] == ["normal"]
    assert len(list(folder.glob("*.png"))) == 3
    (folder / index["masks"][0]["file"]).unlink()
    assert read_masks_index(again) is None  # a listed file is missing


def test_the_eval_cache_check_wants_the_masks(tmp_path):
    ds = _dataset(tmp_path)
    grids = write_grids(tmp_path / "grids", ds, _outputs(0), None, 0.5, 2)
    results = {"fingerprint": "f", "grids": [str(g) for g in grids], "conditions": {}}
    (tmp_path / "metrics.json").write_text(json.dumps(results))
    assert _previous_results(tmp_path, "f") is None  # an evaluation older than the masks is redone
    index = write_grid_masks(tmp_path / "grids", ds, _outputs(0), None, 0.5, 2, "normal", None)
    (tmp_path / "metrics.json").write_text(json.dumps({**results, "grid_masks": str(index)}))
    assert _previous_results(tmp_path, "f")["reused"]
    (tmp_path / "metrics.json").write_text(json.dumps({"fingerprint": "f", "grid_masks": str(index), "conditions": {}}))
    assert _previous_results(tmp_path, "f") is None  # metrics written, pictures not (yet): redone


def _two_runs(tmp: Path) -> dict[str, Path]:
    """Run a: masks under normal and muted audio; run b: normal audio only (no muted condition)."""
    ds = _dataset(tmp)
    a = write_grid_masks(tmp / "a" / "grids", ds, _outputs(0), _outputs(1), 0.5, 3, "normal", "mute")
    b = write_grid_masks(tmp / "b" / "grids", ds, _outputs(2), None, 0.5, 2, "normal", None)
    return {"a": a, "b": b}


def _cell(c: int, r: int) -> tuple[int, int]:
    """A pixel near the top-left corner inside cell (column c, row r) of the cross-run figure."""
    return round((rep.LEFT + c * rep.CELL + rep.PAD) * rep.DPI) + 6, round((rep.TOP + r * rep.CELL + rep.PAD) * rep.DPI) + 6


def test_cross_run_figure_from_two_runs_and_one_without_masks(tmp_path):
    masks = _two_runs(tmp_path)
    path = tmp_path / "report" / "cross.png"
    got = rep.plot_cross_run([("a", masks["a"]), ("b", masks["b"]), ("c", None)], path, 2)
    assert got == path and path.exists() and not list(path.parent.glob(".*"))
    columns = 2 + 2 * 3  # frame | ground truth | normal, muted per run
    image = Image.open(path).convert("RGB")
    assert image.size == rep.cross_run_size(2, columns) == (40 + columns * 160, 80 + 2 * 160 + 10)
    grey = (230, 230, 230)  # "not evaluated"
    for r in range(2):
        assert image.getpixel(_cell(2, r)) != grey and image.getpixel(_cell(4, r)) != grey  # a normal, a muted, b normal
        assert image.getpixel(_cell(5, r)) == grey  # b muted: b has no muted condition
        assert image.getpixel(_cell(6, r)) == grey and image.getpixel(_cell(7, r)) == grey  # c: no masks at all
    # the rows follow the first run: a's third frame is shown when 3 rows are asked, b has no mask there
    three = rep.plot_cross_run([("a", masks["a"]), ("b", masks["b"])], tmp_path / "three.png", 3)
    image = Image.open(three).convert("RGB")
    assert image.size == rep.cross_run_size(3, 6)
    assert image.getpixel(_cell(4, 2)) == grey and image.getpixel(_cell(4, 1)) != grey
    assert rep.plot_cross_run([("c", None), ("d", tmp_path / "missing.json")], tmp_path / "none.png", 2) is None
    assert not (tmp_path / "none.png").exists()


def _fake_run(cfg, name: str, masks: Path | None) -> None:
    out = Path(cfg.train.out_dir) / name
    (out / "eval").mkdir(parents=True)
    (out / "metrics.jsonl").write_text(json.dumps({"kind": "step", "step": 1, "loss": 1.0}) + "\n"
                                       + json.dumps({"kind": "epoch", "epoch": 0, "val": {"miou": 0.2}}) + "\n")
    cond = {"miou": 0.5, "fscore": 0.6, "frames": 4, "by_subset": {"v1s": {"miou": 0.5, "fscore": 0.6, "frames": 4}}}
    metrics = {"checkpoint": str(out / "best"), "split": "test", "threshold": 0.5, "fingerprint": "f", "grids": [],
               "conditions": {"normal": cond, "mute": {**cond, "miou_drop": 0.0, "fscore_drop": 0.0}}}
    if masks is not None:
        metrics["grid_masks"] = str(masks)
    (out / "eval" / "metrics.json").write_text(json.dumps(metrics))


def test_the_report_embeds_and_links_the_cross_run_figure(tmp_path):
    masks = _two_runs(tmp_path / "evals")
    cfg = tiny_config(tmp_path, "runs={teso: [], no_audio: [train.model.use_audio=false], no_text: []}", "report.grids=2")
    _fake_run(cfg, "teso", masks["a"])
    _fake_run(cfg, "no_audio", masks["b"])
    _fake_run(cfg, "no_text", None)  # evaluated before the masks were saved
    written = rep.write_report(cfg)
    out = tmp_path / "report"
    assert written["cross_run"] == out / rep.CROSS_RUN_PNG
    assert Image.open(written["cross_run"]).size == rep.cross_run_size(2, 2 + 2 * 3)
    md = written["markdown"].read_text()
    assert f"]({rep.CROSS_RUN_PNG})" in md and "The same test frames in every run" in md
    page = written["html"].read_text()
    assert page.count("data:image/png;base64,") == 2 and "Same frames across runs" in page  # curves and the figure
    # no run with masks: no figure, the report says why, and the earlier figure is gone
    for name in ("teso", "no_audio"):
        _fake_run_path = Path(cfg.train.out_dir) / name / "eval" / "metrics.json"
        metrics = json.loads(_fake_run_path.read_text())
        del metrics["grid_masks"]
        _fake_run_path.write_text(json.dumps(metrics))
    written = rep.write_report(cfg)
    assert written["cross_run"] is None and not (out / rep.CROSS_RUN_PNG).exists()
    assert "No run has saved grid masks" in written["markdown"].read_text()
    assert written["html"].read_text().count("data:image/png;base64,") == 1


@pytest.mark.parametrize("rows, cols", [(1, 4), (4, 8)])
def test_the_figure_size_grows_by_one_cell_per_row_and_column(rows, cols):
    w, h = rep.cross_run_size(rows, cols)
    assert rep.cross_run_size(rows + 1, cols + 1) == (w + 160, h + 160)
