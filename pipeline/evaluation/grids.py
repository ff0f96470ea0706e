"""Qualitative grids: one PNG per frame with the frame, its ground truth, the prediction, the
prediction under a silenced audio condition, and where each prompt (cue) steers the masks.

Beside the grids, `write_grid_masks` keeps the binary masks of the same frames as small lossless
PNGs with an index (`{grids}/masks/index.json`), so the report can put the same frames of several
runs side by side (pipeline/evaluation/report.py, the cross-run figure)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from PIL import Image, ImageDraw

from pipeline.common.atomic import atomic_folder, atomic_path
from pipeline.model_io.inference import ConditionOutputs

MASKS_DIR = "masks"  # under the grids folder
MASKS_INDEX = "index.json"
MASKS_VERSION = 1


def overlay(frame: Image.Image, mask: np.ndarray, colour=(255, 40, 40)) -> Image.Image:
    base = np.asarray(frame.convert("RGB"), dtype=np.float32)
    m = mask.astype(bool)[..., None]
    tinted = np.where(m, 0.45 * base + 0.55 * np.array(colour, np.float32), base)
    return Image.fromarray(tinted.astype(np.uint8))


def _heat_rgb(heat: np.ndarray, size: tuple[int, int]) -> Image.Image:
    rgb = (colormaps["inferno"](np.clip(heat, 0, 1))[..., :3] * 255).astype(np.uint8)
    return Image.fromarray(rgb).resize(size, Image.BILINEAR)


def grid_picks(outputs: ConditionOutputs, n: int) -> list[int]:
    """Indices of the grid frames: the first frame with a mask of each of the first n videos, in
    the dataset's order. Depends only on the evaluated split, so every run evaluated on the same
    split (and the same cached features) picks the same frames."""
    firsts: dict[tuple, int] = {}
    for i, m in enumerate(outputs.has_mask):
        if m:
            firsts.setdefault(outputs.keys[i][:2], i)
    return list(firsts.values())[:n]


def predicted_mask(outputs: ConditionOutputs, i: int, threshold: float) -> np.ndarray:
    """The binary prediction of frame i (the max over classes for a semantic model) > threshold."""
    s = outputs.scores[i]
    return (s.amax(0) if s.shape[0] > 1 else s[0]).numpy() > threshold


def frame_name(sample) -> str:
    return f"{sample.subset}_{sample.uid}_{sample.frame}"


def grid_paths(out_dir: Path, dataset, picks: list[int]) -> list[Path]:
    """Where write_grids writes the grids of `picks` (known before writing them)."""
    return [Path(out_dir) / f"{frame_name(dataset.samples[i])}.png" for i in picks]


def masks_index_path(out_dir: Path) -> Path:
    """The index write_grid_masks writes under the grids folder `out_dir`."""
    return Path(out_dir) / MASKS_DIR / MASKS_INDEX


def _frame_image(dataset, i: int) -> Image.Image:
    size = (dataset.image_size, dataset.image_size)
    return Image.open(dataset.samples[i].frame_path).convert("RGB").resize(size, Image.BILINEAR)


def _save_png(image: Image.Image, path: Path) -> Path:
    with atomic_path(path) as tmp:  # a killed run leaves the old picture or the new one
        image.save(tmp, format="PNG")
    return path


def write_grids(out_dir: Path, dataset, normal: ConditionOutputs, silenced: ConditionOutputs | None, threshold: float, n: int,
                silenced_label: str = "muted audio") -> list[Path]:
    """One PNG per frame: frame | ground truth | prediction | prediction under `silenced` | heat maps."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    # one frame per video (its first with a mask), so the grids show n different scenes
    picks = grid_picks(normal, n)
    for i, path in zip(picks, grid_paths(out_dir, dataset, picks)):
        size = (dataset.image_size, dataset.image_size)
        frame = _frame_image(dataset, i)
        tiles = [("frame", frame), ("ground truth", overlay(frame, normal.gts[i].numpy() > 0))]
        tiles.append(("prediction", overlay(frame, predicted_mask(normal, i, threshold))))
        if silenced is not None:
            tiles.append((silenced_label, overlay(frame, predicted_mask(silenced, i, threshold))))
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
        written.append(_save_png(canvas, path))
    return written


def _mask_png(mask: np.ndarray) -> Image.Image:
    return Image.fromarray(np.where(mask, 255, 0).astype(np.uint8), mode="L")


def write_grid_masks(out_dir: Path, dataset, normal: ConditionOutputs, silenced: ConditionOutputs | None, threshold: float, n: int,
                     reference: str, silenced_name: str | None) -> Path:
    """The grid frames' binary masks as lossless PNGs (0 / 255, mode L) under `{out_dir}/masks/`:
    per frame the resized frame, its ground truth (class > 0) and the prediction (> threshold) under
    the reference condition and under `silenced` (when given). `index.json` lists them:

        {"version", "threshold", "image_size", "reference_condition", "muted_condition",
         "frames": [{"subset", "uid", "frame", "image", "gt"}],
         "masks":  [{"subset", "uid", "frame", "condition", "role": "normal" | "muted", "file"}]}

    File names are relative to the masks folder. The folder is replaced as a whole (atomic_folder):
    a reader sees the old set or the new one, never a mix. Returns the index path."""
    picks = grid_picks(normal, n)
    conditions = [("normal", reference, normal)] + ([("muted", silenced_name, silenced)] if silenced is not None else [])
    final = Path(out_dir) / MASKS_DIR
    frames, masks = [], []
    with atomic_folder(final) as tmp:
        for i in picks:
            sample = dataset.samples[i]
            key = {"subset": sample.subset, "uid": sample.uid, "frame": int(sample.frame)}
            stem = frame_name(sample)
            _frame_image(dataset, i).save(tmp / f"{stem}_frame.png", format="PNG")
            _mask_png(normal.gts[i].numpy() > 0).save(tmp / f"{stem}_gt.png", format="PNG")
            frames.append({**key, "image": f"{stem}_frame.png", "gt": f"{stem}_gt.png"})
            for role, cond, outputs in conditions:
                file = f"{stem}_{cond}.png"
                _mask_png(predicted_mask(outputs, i, threshold)).save(tmp / file, format="PNG")
                masks.append({**key, "condition": cond, "role": role, "file": file})
        index = {"version": MASKS_VERSION, "threshold": threshold, "image_size": dataset.image_size, "reference_condition": reference,
                 "muted_condition": silenced_name if silenced is not None else None, "frames": frames, "masks": masks}
        (tmp / MASKS_INDEX).write_text(json.dumps(index, indent=2))
    return final / MASKS_INDEX


def read_masks_index(path: Path) -> dict | None:
    """The index write_grid_masks wrote, when it and every file it lists are there; else None."""
    path = Path(path)
    try:
        index = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(index, dict) or index.get("version") != MASKS_VERSION:
        return None
    try:
        files = [f[k] for f in index["frames"] for k in ("image", "gt")] + [m["file"] for m in index["masks"]]
    except (KeyError, TypeError):
        return None
    if not all((path.parent / f).exists() for f in files):
        return None
    return index
