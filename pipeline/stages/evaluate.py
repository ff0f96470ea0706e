"""Evaluate stage: AVSBench metrics under every audio condition (paper Table 4), cue recognition
(Table 3), the per-class AVSS table, qualitative grids, all written to the `metrics` cache table
(DuckDB view `metrics`) and to `{out}/metrics.json`. The grid frames' binary masks (normal and
muted audio) go to `{out}/grids/masks/` for the report's cross-run figure.

The same trained model is run on the same frames once per audio condition (normal, mute, white
noise ...); only the cached audio features differ. Relative drop = (reference - condition) /
reference, the reference being `eval.reference_condition` (normal audio by default).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import torch

from pipeline.common.atomic import atomic_write_text, sweep_temporaries
from pipeline.config import Config, save_effective_config
from pipeline.data.avsbench import decode_mask, read_label2idx
from pipeline.evaluation.cue_recognition import cue_recognition
from pipeline.evaluation.grids import read_masks_index, write_grid_masks, write_grids
from pipeline.evaluation.segmentation import binary_metrics, semantic_metrics_table
from pipeline.model_io.checkpoints import load_trained
from pipeline.model_io.inference import ConditionOutputs, run_condition
from pipeline.model_io.samples import frame_samples, make_dataset
from pipeline.stages import lineage
from pipeline.stages.base import Stage

EVAL_VERSION = 2  # part of every evaluation's fingerprint: bump when the same inputs give other results


def eval_fingerprint(cfg: Config, checkpoint: Path, selected: dict[str, tuple[lineage.Stores, list]]) -> str:
    """What an evaluation's numbers depend on: the weights, the eval settings, the image size and the
    cached features it reads (`selected`: per condition its stores and the frames it scores; the
    stores' fingerprints and the frames' keys, which carry the content hashes of their audio and
    captions, so a replaced input is evaluated again)."""
    digest = hashlib.sha256((checkpoint / "model.safetensors").read_bytes())
    stores = {}
    for name, (st, samples) in selected.items():
        keys = hashlib.sha256(json.dumps(sorted([s.audio_key, s.text_key or ()] for s in samples)).encode()).hexdigest()[:16]
        stores[name] = [st.audio.table.fingerprint, None if st.text is None else st.text.table.fingerprint, keys]
    digest.update(json.dumps(
        {"version": EVAL_VERSION, "eval": cfg.eval.model_dump(mode="json"), "image_size": cfg.train.image_size, "dataset": cfg.dataset.name, "stores": stores},
        sort_keys=True,
    ).encode())
    return digest.hexdigest()[:16]


def _previous_results(out_dir: Path, fingerprint: str) -> dict | None:
    """The results of an earlier evaluation with the same fingerprint, when all its files are there
    (metrics.json, the grids it lists, the grid masks and every file of their index)."""
    path = out_dir / "metrics.json"
    if not path.exists():
        return None
    try:
        results = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    if results.get("fingerprint") != fingerprint or "grids" not in results or not all(Path(g).exists() for g in results["grids"]):
        return None
    # the grid frames' masks the report compares across runs (an evaluation older than them is redone)
    if not results.get("grid_masks") or read_masks_index(Path(results["grid_masks"])) is None:
        return None
    results["reused"] = True
    return results


def _semantic_gts(dataset) -> dict[tuple, torch.Tensor]:
    """Class maps of the evaluated frames (for cue recognition even when training was binary)."""
    out = {}
    for s in dataset.samples:
        if s.has_mask and s.mask_path:
            out[(s.subset, s.uid, s.frame)] = torch.from_numpy(decode_mask(s.mask_path, "semantic"))
    return out


def run_eval(cfg: Config) -> dict:
    e = cfg.eval
    reference = e.reference_condition
    device = torch.device("cuda" if cfg.features.device == "cuda" and torch.cuda.is_available() else "cpu")
    model, ckpt = load_trained(cfg, lineage.open_stores(cfg, reference), e.checkpoint)
    model.to(device)
    num_labels = model.config.num_labels
    if e.cue_filter and num_labels == 1:
        raise ValueError("eval.cue_filter needs a semantic model (train.model.num_labels > 1): binary masks carry no class to filter")
    class_names = {v - 1: k for k, v in read_label2idx(cfg.dataset.root).items()}
    out_dir = Path(e.out_dir) if e.out_dir else Path(cfg.train.out_dir) / "eval"
    for folder in (out_dir, out_dir / "grids"):
        sweep_temporaries(folder)  # what a killed evaluation left half-written
    selected, skipped_by = {}, {}  # the frames each condition scores, selected once for the fingerprint and the passes
    for name in e.conditions:
        stores = lineage.open_stores(cfg, name)
        samples, skipped_by[name] = frame_samples(cfg, e.split, stores)
        selected[name] = (stores, samples)
    fingerprint = eval_fingerprint(cfg, ckpt, selected)
    previous = _previous_results(out_dir, fingerprint)
    if previous is not None:
        return previous
    results: dict = {"checkpoint": str(ckpt), "split": e.split, "threshold": e.threshold, "conditions": {}, "fingerprint": fingerprint}
    outputs: dict[str, ConditionOutputs] = {}
    datasets = {}
    for name in e.conditions:
        stores, samples = selected[name]
        skipped = skipped_by[name]
        if not samples:
            raise ValueError(f"no {e.split} frames with cached features for condition {name!r}; run `teso features`")
        ds = make_dataset(cfg, samples, stores, train=False, num_labels=num_labels)
        datasets[name] = ds
        outputs[name] = run_condition(model, ds, device)
        if num_labels == 1:
            results["conditions"][name] = binary_metrics(outputs[name], e.threshold)
        else:
            filt = lineage.cue_lists(cfg) if e.cue_filter else None
            results["conditions"][name] = semantic_metrics_table(outputs[name], num_labels, class_names, filt)
        results["conditions"][name]["skipped_without_features"] = skipped
    base = results["conditions"][reference]
    for r in results["conditions"].values():
        for metric in ("miou", "fscore"):
            if metric in r and base.get(metric):
                r[f"{metric}_drop"] = (base[metric] - r[metric]) / base[metric]
    semantic_gts = _semantic_gts(datasets[reference])
    results["cue_recognition"] = cue_recognition(outputs[reference], lineage.cue_lists(cfg), semantic_gts, class_names, cfg.features.text.n_t)
    # the metrics first, without the pictures' keys: a failure drawing the pictures loses no metric,
    # and the next evaluation (its cache check wants "grids" and "grid_masks") draws them again
    _write(cfg, results, out_dir)
    muted = next((c.name for c in map(cfg.features.audio.condition, e.conditions) if c.kind == "mute"), None)
    grid_dir = out_dir / "grids"
    grids = write_grids(grid_dir, datasets[reference], outputs[reference], outputs.get(muted), e.threshold, e.grids)
    masks = write_grid_masks(grid_dir, datasets[reference], outputs[reference], outputs.get(muted), e.threshold, e.grids, reference,
                             muted if muted in outputs else None)
    results["grids"] = [str(p) for p in grids]
    results["grid_masks"] = str(masks)
    atomic_write_text(out_dir / "metrics.json", json.dumps(results, indent=2, default=str))
    return results


def _rows(cfg: Config, results: dict) -> list[dict]:
    run = Path(cfg.train.out_dir).name
    base = {"dataset": cfg.dataset.name, "run": run, "checkpoint": Path(results["checkpoint"]).name, "split": results["split"],
            "threshold": results["threshold"], "evaluation": results["fingerprint"]}
    rows = []
    for cond, r in results["conditions"].items():
        for metric, value in r.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and metric not in ("frames", "skipped_without_features"):
                rows.append({**base, "condition": cond, "metric": metric, "value": float(value), "frames": r.get("frames")})
            elif metric == "by_subset":
                for subset, m in value.items():
                    for name in ("miou", "fscore"):
                        rows.append({**base, "condition": cond, "metric": f"{name}/{subset}", "value": float(m[name]), "frames": m["frames"]})
            elif isinstance(value, dict) and metric.startswith("per_class"):
                for cls, v in value.items():
                    rows.append({**base, "condition": cond, "metric": f"{metric}/{cls}", "value": float(v), "frames": r.get("frames")})
    for metric, value in results.get("cue_recognition", {}).items():
        if metric.endswith("_ap") or metric == "cue_kept_share":
            rows.append({**base, "condition": "-", "metric": metric, "value": float(value), "frames": results["cue_recognition"].get(metric.replace("_ap", "_frames"))})
    return rows


def _write(cfg: Config, results: dict, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "metrics.json", json.dumps(results, indent=2, default=str))
    save_effective_config(cfg, out_dir)
    rows = pa.Table.from_pylist(_rows(cfg, results), schema=lineage.METRICS_SCHEMA)
    lineage.metrics_table(cfg).write(rows)


STAGE = Stage(name="evaluate", reads=("manifest", "cues", "audio_features", "text_features"), writes="metrics", run=run_eval)
