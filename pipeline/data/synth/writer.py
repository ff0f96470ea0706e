"""Writing: one video's files (rendered in a process pool), the index files (metadata.csv,
label2idx.json, scene_descriptions.jsonl, the AVS-V3 split files), and `generate`, which builds
the whole dataset in a hidden sibling folder and swaps it into place.

Scenes are planned in the parent and rendered by a pool whose scheduling cannot change a byte.
A regenerated dataset whose files are all byte-identical leaves the old folder untouched; else
files that did not change keep their modification times (see `_keep_unchanged_mtimes`).
"""
from __future__ import annotations

import csv
import filecmp
import json
import multiprocessing
import os
import re
import shutil
import time
import uuid
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image
from tqdm import tqdm

from pipeline.common.atomic import replace_folder
from pipeline.common.errors import UserError
from pipeline.data.layout import (
    AUDIO_FILE,
    DESCRIPTIONS_FILE,
    FRAME_SUFFIX,
    FRAMES_DIR,
    LABEL2IDX_FILE,
    LABELS_RGB_DIR,
    LABELS_SEMANTIC_DIR,
    MASK_SUFFIX,
    METADATA_FILE,
    V3_DIR,
)
from pipeline.data.palette import index_to_rgb
from pipeline.data.synth.classes import CLASS_NAMES
from pipeline.data.synth.drawing import _background, _render_frame
from pipeline.data.synth.plans import (
    METADATA_COLUMNS,
    SPLITS,
    SUBSETS,
    SynthConfig,
    _check,
    _metadata_row,
    _Plan,
    _plan,
    _v3_splits,
)
from pipeline.data.synth.sounds import SAMPLE_RATE, _render_audio


def _write_video(job: tuple[Path, _Plan, SynthConfig]) -> None:
    """Write one video's frames, masks and audio."""
    root, plan, cfg = job
    rng = np.random.default_rng(plan.render_seed)
    folder = root / plan.label / plan.uid
    for sub in (FRAMES_DIR, LABELS_RGB_DIR, LABELS_SEMANTIC_DIR):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    base = _background(rng, plan, cfg.size)
    for t in range(plan.frames):
        image, mask = _render_frame(rng, plan, base, t, cfg.size)
        image.save(folder / FRAMES_DIR / f"{t}{FRAME_SUFFIX}", quality=cfg.jpeg_quality)
        if plan.has_mask[t]:
            Image.fromarray(mask, mode="L").save(folder / LABELS_SEMANTIC_DIR / f"{t}{MASK_SUFFIX}")
            Image.fromarray(index_to_rgb(mask)).save(folder / LABELS_RGB_DIR / f"{t}{MASK_SUFFIX}")
    sf.write(folder / AUDIO_FILE, _render_audio(rng, plan, cfg), SAMPLE_RATE, subtype="PCM_16")


def _write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=METADATA_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def _same_tree(a: Path, b: Path) -> bool:
    def files(root: Path) -> list[str]:
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())

    names = files(a)
    return names == files(b) and all(filecmp.cmp(a / n, b / n, shallow=False) for n in names)


def _keep_unchanged_mtimes(new: Path, old: Path) -> None:
    """Give every file of `new` that is byte-identical to its namesake in `old` that file's times, so
    a regenerated dataset (e.g. more videos per split; video i depends only on seed, subset, split
    and i) leaves the unchanged videos' signatures, and the caches keyed on them, valid."""
    for path in new.rglob("*"):
        before = old / path.relative_to(new)
        if path.is_file() and before.is_file() and filecmp.cmp(path, before, shallow=False):
            st = before.stat()
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


class SynthOverwriteError(UserError, FileExistsError):
    """The output folder holds files the generator did not write; replacing it would delete them."""


_VIDEO_FILE = re.compile(rf"({FRAMES_DIR}/\d+{re.escape(FRAME_SUFFIX)}|({LABELS_RGB_DIR}|{LABELS_SEMANTIC_DIR})/\d+{re.escape(MASK_SUFFIX)})")


def _foreign_files(out: Path) -> list[Path]:
    """Files under an earlier synthetic dataset `out` that no generator run wrote there: anything
    but its listed videos' frames, masks and soundtracks, its CSV and JSON files and its V3 split files."""
    with (out / METADATA_FILE).open(newline="") as fh:
        videos = {out / r["label"] / r["uid"] for r in csv.DictReader(fh) if r.get("label") and r.get("uid")}
    ours = {out / METADATA_FILE, out / LABEL2IDX_FILE, out / DESCRIPTIONS_FILE}
    foreign = []
    for path in sorted(out.rglob("*")):
        if not path.is_file() or path in ours:
            continue
        rel = path.relative_to(out)
        if rel.parts[0] == V3_DIR and path.suffix == ".csv":
            continue
        video, inner = out.joinpath(*rel.parts[:2]), rel.parts[2:]
        if video in videos and (inner == (AUDIO_FILE,) or len(inner) == 2 and _VIDEO_FILE.fullmatch("/".join(inner))):
            continue
        foreign.append(path)
    return foreign


def _install(tmp: Path, out: Path) -> bool:
    """Move the finished dataset into place; False when `out` already held identical files (kept,
    so their modification times, and the caches keyed on them, stay valid). Refuses, before
    anything is moved, when `out` holds files a user put there."""
    if out.exists() and any(out.iterdir()):
        foreign = _foreign_files(out) if (out / METADATA_FILE).is_file() else []
        if foreign:
            shown = ", ".join(str(f) for f in foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
            raise SynthOverwriteError(f"{out} holds files the synthetic dataset did not write ({shown}); regenerating "
                                      f"would delete them: move them away or choose another --out")
        if _same_tree(tmp, out):
            shutil.rmtree(tmp)
            return False
        _keep_unchanged_mtimes(tmp, out)
    replace_folder(tmp, out)  # an empty `out` is swapped out and removed too
    return True


def generate(out: Path, cfg: SynthConfig, progress: bool = True) -> dict:
    """Write the synthetic dataset to `out` and return a summary: videos per subset and split,
    frames, seconds taken, whether `out` changed, and any V3 k-shot shortfall (also warned).

    `out` must be missing, empty, or an earlier synthetic dataset (it has scene_descriptions.jsonl),
    which is replaced, or kept untouched when the new files are byte-identical. With workers > 1
    the pool is started by spawn, so a calling script needs the `if __name__ == "__main__":` guard."""
    _check(cfg)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} is a file; the synthetic dataset needs a folder")
    if out.exists() and any(out.iterdir()) and not (out / DESCRIPTIONS_FILE).is_file():
        raise SynthOverwriteError(f"{out} is not empty and is not an earlier synthetic dataset "
                              f"(no {DESCRIPTIONS_FILE}); refusing to replace it")
    start = time.perf_counter()
    plans, rows = [], []
    for label in SUBSETS:
        for split in SPLITS:
            for i in range(cfg.videos.get(label, {}).get(split, 0)):
                plan, desc = _plan(cfg, label, split, i)
                plans.append(plan)
                rows += desc
    v3, shortfall = _v3_splits(plans, cfg)
    if shortfall:
        warnings.warn(f"dataset too small for the AVS-V3 k-shot splits; unseen videos per class found instead "
                      f"of k: {shortfall}", stacklevel=2)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        jobs = [(tmp, p, cfg) for p in plans]
        with tqdm(total=len(jobs), desc="synth videos", unit="video", disable=not progress) as bar:
            if cfg.workers == 1 or len(jobs) < 2:
                for job in jobs:
                    _write_video(job)
                    bar.update()
            else:
                # spawn, not fork: a caller may hold torch or tqdm threads whose locks fork would copy
                with multiprocessing.get_context("spawn").Pool(min(cfg.workers, len(jobs))) as pool:
                    for _ in pool.imap_unordered(_write_video, jobs, chunksize=4):
                        bar.update()
        _write_csv(tmp / METADATA_FILE, [_metadata_row(p) for p in plans])
        label2idx = {"background": 1} | {name: k + 2 for k, name in enumerate(CLASS_NAMES)}
        (tmp / LABEL2IDX_FILE).write_text(json.dumps(label2idx, indent=2) + "\n")
        rows.sort(key=lambda r: (r["label"], r["uid"], r["frame"]))
        (tmp / DESCRIPTIONS_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows))
        for name, v3_rows in v3.items():  # name: a path under the root
            _write_csv(tmp / name, v3_rows)
        changed = _install(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    counts = {label: dict(splits) for label, splits in cfg.videos.items()}
    return {"out": str(out), "videos": counts, "frames": sum(p.frames for p in plans),
            "seconds": round(time.perf_counter() - start, 2), "changed": changed, "v3_shortfall": shortfall}
