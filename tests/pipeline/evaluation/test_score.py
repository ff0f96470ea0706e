import numpy as np
import pytest
from PIL import Image

from flows.cli import main
from pipeline.evaluation.score import score_folders


def png(path, arr, mode="L"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr.astype(np.uint8), mode).save(path)


def test_binary_scores_match_hand_computed(tmp_path, capsys):
    gt = np.zeros((4, 4), np.uint8)
    gt[:2, :2] = 255  # 4 foreground pixels
    pred = np.zeros((4, 4), np.uint8)
    pred[:2, :] = 255  # 8 predicted, 4 correct -> IoU 0.5
    png(tmp_path / "gt/vidA/0.png", gt)
    png(tmp_path / "pred/vidA/0.png", pred)
    png(tmp_path / "gt/vidB/0.png", np.zeros((4, 4)))  # empty GT
    png(tmp_path / "pred/vidB/0.png", np.zeros((4, 4)))  # correctly empty -> 1.0
    report = score_folders(tmp_path / "pred", tmp_path / "gt")
    assert report.videos == 2 and report.metrics["miou"] == pytest.approx(0.75, abs=1e-6)
    # F: video A best at any threshold = 1.3*0.5*1/(0.15+1); video B has only an empty GT -> 0
    assert report.metrics["fscore"] == pytest.approx((1.3 * 0.5 / 1.15) / 2, abs=1e-6)
    assert main(["score", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--json", str(tmp_path / "r.json")]) == 0
    assert "2 frames in 2 videos" in capsys.readouterr().out and (tmp_path / "r.json").exists()


def test_missing_and_resized_predictions_are_reported(tmp_path):
    png(tmp_path / "gt/v/0.png", np.full((4, 4), 255))
    png(tmp_path / "gt/v/1.png", np.full((4, 4), 255))
    png(tmp_path / "pred/v/0.png", np.full((8, 8), 255))
    (tmp_path / "pred/v").mkdir(parents=True, exist_ok=True)
    report = score_folders(tmp_path / "pred", tmp_path / "gt")
    assert report.missing == ["v/1.png"] and report.resized == ["v/0.png"]
    assert report.metrics["miou"] == pytest.approx(0.5, abs=1e-6)


def test_semantic_palette_masks(tmp_path):
    from pipeline.data.palette import index_to_rgb

    cls = np.array([[0, 1], [2, 2]])
    png(tmp_path / "gt/v/0.png", index_to_rgb(cls), "RGB")
    png(tmp_path / "pred/v/0.png", cls)
    report = score_folders(tmp_path / "pred", tmp_path / "gt", semantic=True, num_classes=3)
    assert report.metrics["miou"] == pytest.approx(1.0)


def test_clear_errors(tmp_path, capsys):
    assert main(["score", "--pred", str(tmp_path / "nope"), "--gt", str(tmp_path)]) == 2
    assert "--pred folder not found" in capsys.readouterr().err
