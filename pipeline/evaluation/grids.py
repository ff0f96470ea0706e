"""Qualitative grids: one PNG per frame with the frame, its ground truth, the prediction, the
prediction under a silenced audio condition, and where each prompt (cue) steers the masks."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib import colormaps
from PIL import Image, ImageDraw

from pipeline.model_io.inference import ConditionOutputs


def _overlay(frame: Image.Image, mask: np.ndarray, colour=(255, 40, 40)) -> Image.Image:
    base = np.asarray(frame.convert("RGB"), dtype=np.float32)
    m = mask.astype(bool)[..., None]
    tinted = np.where(m, 0.45 * base + 0.55 * np.array(colour, np.float32), base)
    return Image.fromarray(tinted.astype(np.uint8))


def _heat_rgb(heat: np.ndarray, size: tuple[int, int]) -> Image.Image:
    rgb = (colormaps["inferno"](np.clip(heat, 0, 1))[..., :3] * 255).astype(np.uint8)
    return Image.fromarray(rgb).resize(size, Image.BILINEAR)


def write_grids(out_dir: Path, dataset, normal: ConditionOutputs, silenced: ConditionOutputs | None, threshold: float, n: int,
                silenced_label: str = "muted audio") -> list[Path]:
    """One PNG per frame: frame | ground truth | prediction | prediction under `silenced` | heat maps."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    # one frame per video (its first with a mask), so the grids show n different scenes
    firsts: dict[tuple, int] = {}
    for i, m in enumerate(normal.has_mask):
        if m:
            firsts.setdefault(normal.keys[i][:2], i)
    picks = list(firsts.values())[:n]
    for i in picks:
        sample = dataset.samples[i]
        size = (dataset.image_size, dataset.image_size)
        frame = Image.open(sample.frame_path).convert("RGB").resize(size, Image.BILINEAR)
        tiles = [("frame", frame), ("ground truth", _overlay(frame, normal.gts[i].numpy() > 0))]
        pred = (normal.scores[i].amax(0) if normal.scores[i].shape[0] > 1 else normal.scores[i][0]).numpy() > threshold
        tiles.append(("prediction", _overlay(frame, pred)))
        if silenced is not None:
            other = (silenced.scores[i].amax(0) if silenced.scores[i].shape[0] > 1 else silenced.scores[i][0]).numpy() > threshold
            tiles.append((silenced_label, _overlay(frame, other)))
        if normal.heat[i] is not None:
            kept = normal.cue_kept[i]
            for j, heat in enumerate(normal.heat[i][:4]):
                state = "" if kept is None or j >= len(kept) else (" kept" if kept[j] else " masked")
                tiles.append((f"prompt {j}{state}", _heat_rgb(heat.numpy(), size)))
        w, h = size
        canvas = Image.new("RGB", (w * len(tiles), h + 16), "white")
        draw = ImageDraw.Draw(canvas)
        for k, (title, tile) in enumerate(tiles):
            canvas.paste(tile, (k * w, 16))
            draw.text((k * w + 3, 2), title, fill=(0, 0, 0))
        path = out_dir / f"{sample.subset}_{sample.uid}_{sample.frame}.png"
        canvas.save(path)
        written.append(path)
    return written
