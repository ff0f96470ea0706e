"""Evaluation: AVSBench metrics under every audio condition (paper Table 4), cue recognition
(Table 3), the per-class AVSS table, qualitative grids, all written to the `metrics` cache table
(DuckDB view `metrics`) and to `{out}/metrics.json`.

The same trained model is run on the same frames once per audio condition (normal, mute, white
noise ...); only the cached audio features differ. Relative drop = (normal - condition) / normal.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from PIL import Image

from pipeline.atomic import atomic_write_text
from pipeline.cache_store import CacheTable
from pipeline.config import Config, save_effective_config
from pipeline.cue_recognition import mean_average_precision
from pipeline.train_stage import frame_samples, load_trained, make_dataset, open_stores, predict

STAGE = "metrics"
EVAL_VERSION = 2  # part of every evaluation's fingerprint: bump when the same inputs give other results
METRICS_SCHEMA = pa.schema(
    [
        ("dataset", pa.string()),
        ("run", pa.string()),  # train.out_dir name
        ("checkpoint", pa.string()),
        ("split", pa.string()),
        ("condition", pa.string()),  # audio condition, or "-" for condition-free metrics
        ("metric", pa.string()),  # miou, fscore, miou_drop, rec1_ap, miou_class/<name>, ...
        ("value", pa.float64()),
        ("frames", pa.int64()),
        ("threshold", pa.float64()),
        ("evaluation", pa.string()),  # eval_fingerprint: weights + settings + features evaluated
    ]
)


@dataclass
class ConditionOutputs:
    """Everything one pass over the split produced (kept on CPU)."""

    scores: list[torch.Tensor] = field(default_factory=list)  # (N_C, H, W) per frame
    gts: list[torch.Tensor] = field(default_factory=list)  # (H, W) class map per frame
    has_mask: list[bool] = field(default_factory=list)
    keys: list[tuple] = field(default_factory=list)  # (subset, uid, frame)
    cue_scores: list[np.ndarray | None] = field(default_factory=list)
    cue_kept: list[np.ndarray | None] = field(default_factory=list)
    heat: list[torch.Tensor | None] = field(default_factory=list)  # (N_P, h, w) per-prompt heat maps


def _heat_maps(out, b: int) -> torch.Tensor | None:
    """Where each prompt (cue) steers the masks: sum over queries of attention(q, cue) * sigmoid(mask_q)."""
    if out.pmqs_attention is None:
        return None
    attn = out.pmqs_attention[b].mean(0)  # (N_Q, N_P)
    masks = out.mask_logits[b].sigmoid()  # (N_Q, h, w)
    heat = torch.einsum("qp,qhw->phw", attn, masks)
    return (heat / heat.flatten(1).amax(1).clamp_min(1e-8)[:, None, None]).cpu()


def run_condition(model, dataset, device) -> ConditionOutputs:
    res = ConditionOutputs()
    for batch, out in predict(model, dataset, device=device):
        for b in range(out.semantic_map.shape[0]):
            res.scores.append(out.semantic_map[b].float().cpu())
            res.gts.append(batch["mask"][b])
            res.has_mask.append(bool(batch["has_mask"][b]))
            res.keys.append((batch["subset"][b], batch["uid"][b], int(batch["frame"][b])))
            res.cue_scores.append(None if out.cue_scores is None else out.cue_scores[b].cpu().numpy())
            res.cue_kept.append(None if out.cue_kept is None else out.cue_kept[b].cpu().numpy())
            res.heat.append(_heat_maps(out, b))
    return res


def binary_metrics(res: ConditionOutputs, threshold: float) -> dict:
    from model.metrics import binary_fscore, binary_miou

    idx = [i for i, m in enumerate(res.has_mask) if m]
    if not idx:
        raise ValueError("no frame with a ground-truth mask in the evaluation split")
    probs = torch.stack([res.scores[i][0].clamp(0, 1) for i in idx])  # (N, H, W)
    gts = torch.stack([res.gts[i] > 0 for i in idx])
    vids: dict[tuple, int] = {}
    video = torch.tensor([vids.setdefault(res.keys[i][:2], len(vids)) for i in idx])

    def scores(rows: torch.Tensor) -> dict:
        _, v = torch.unique(video[rows], return_inverse=True)  # contiguous video ids of the subset
        return {
            "miou": float(binary_miou(probs[rows], gts[rows], threshold=threshold, video_index=v, from_logits=False)),
            "fscore": float(binary_fscore(probs[rows], gts[rows], video_index=v, from_logits=False)),
            "frames": int(rows.numel()),
        }

    out = scores(torch.arange(len(idx)))
    subsets = [res.keys[i][0] for i in idx]
    # per subset (v1s = S4, v1m = MS3, v2 = AVSS-binary), as the paper's Table 1 reports them
    out["by_subset"] = {
        name: scores(torch.tensor([k for k, s in enumerate(subsets) if s == name])) for name in sorted(set(subsets))
    }
    return out


def cue_filter(scores: torch.Tensor, cues: list[str], class_names: dict[int, str]) -> torch.Tensor:
    """The "baseline filter" of the paper's Table 6: a model without text, whose predicted classes
    are intersected with the reasoner's cues at evaluation. Classes not named by any cue get score
    0 (background always stays); scores (C, H, W)."""
    from pipeline.cue_parser import normalize_cue

    named = {normalize_cue(c) or c for c in cues}
    keep = torch.tensor([c == 0 or (normalize_cue(class_names.get(c, "")) or class_names.get(c)) in named for c in range(scores.shape[0])])
    return scores * keep[:, None, None]


def semantic_metrics_table(res: ConditionOutputs, num_classes: int, class_names: dict[int, str], cues: dict[tuple, list[str]] | None = None) -> dict:
    """AVSS metrics; with `cues`, each frame's scores are cue-filtered first (Table 6)."""
    from model.metrics import semantic_metrics

    idx = [i for i, m in enumerate(res.has_mask) if m]
    scores = [res.scores[i] if cues is None else cue_filter(res.scores[i], cues.get(res.keys[i], []), class_names) for i in idx]
    preds = torch.stack([s.argmax(0) for s in scores])
    gts = torch.stack([res.gts[i] for i in idx])
    out = semantic_metrics(preds, gts, num_classes)
    out["frames"] = len(idx)
    out["class_names"] = class_names
    return out


def _ranked_cues_rec1(cfg: Config) -> dict[tuple, list[str]]:
    from pipeline.cues_stage import cues_table

    rows = cues_table(cfg).read(columns=["subset", "uid", "frame", "cues", "status"]).to_pylist()
    return {(r["subset"], r["uid"], r["frame"]): (r["cues"] or []) for r in rows if r["status"] == "ok"}


def _truth_names(gt: torch.Tensor, class_names: dict[int, str]) -> list[str]:
    return [class_names[int(c)] for c in torch.unique(gt).tolist() if int(c) != 0 and int(c) in class_names]


def cue_recognition(cfg: Config, res: ConditionOutputs, semantic_gts: dict[tuple, torch.Tensor], class_names: dict[int, str]) -> dict:
    """REC#1 (reasoner's cues in order) and REC#2 (cues the dynamic mask keeps, by score)."""
    cues = _ranked_cues_rec1(cfg)
    n_t = cfg.features.text.n_t
    rec1, rec2, shares = [], [], []
    for i, key in enumerate(res.keys):
        if key not in cues or key not in semantic_gts:
            continue
        truth = _truth_names(semantic_gts[key], class_names)
        ranked = cues[key][:n_t]
        rec1.append((ranked, truth))
        if res.cue_kept[i] is not None and res.cue_scores[i] is not None:  # cues were scored against audio
            kept = [j for j in range(len(ranked)) if res.cue_kept[i][j]]
            if ranked:
                shares.append(len(kept) / len(ranked))
            kept.sort(key=lambda j: -float(res.cue_scores[i][j]))
            rec2.append(([ranked[j] for j in kept], truth))
    ap1, n1 = mean_average_precision(rec1)
    out = {"rec1_ap": ap1, "rec1_frames": n1}
    if shares:  # how many of the reasoner's cues the dynamic mask lets through, on average
        out["cue_kept_share"] = float(np.mean(shares))
    if rec2:
        ap2, n2 = mean_average_precision(rec2)
        out |= {"rec2_ap": ap2, "rec2_frames": n2}
    return out


# -- pictures ---------------------------------------------------------------------------------
def _overlay(frame: Image.Image, mask: np.ndarray, colour=(255, 40, 40)) -> Image.Image:
    base = np.asarray(frame.convert("RGB"), dtype=np.float32)
    m = mask.astype(bool)[..., None]
    tinted = np.where(m, 0.45 * base + 0.55 * np.array(colour, np.float32), base)
    return Image.fromarray(tinted.astype(np.uint8))


def _heat_rgb(heat: np.ndarray, size: tuple[int, int]) -> Image.Image:
    from matplotlib import colormaps

    rgb = (colormaps["inferno"](np.clip(heat, 0, 1))[..., :3] * 255).astype(np.uint8)
    return Image.fromarray(rgb).resize(size, Image.BILINEAR)


def write_grids(out_dir: Path, dataset, normal: ConditionOutputs, mute: ConditionOutputs | None, threshold: float, n: int) -> list[Path]:
    """One PNG per frame: frame | ground truth | prediction | prediction under mute | heat maps."""
    from PIL import ImageDraw

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
        if mute is not None:
            muted = (mute.scores[i].amax(0) if mute.scores[i].shape[0] > 1 else mute.scores[i][0]).numpy() > threshold
            tiles.append(("muted audio", _overlay(frame, muted)))
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


# -- the stage --------------------------------------------------------------------------------
def metrics_table(cfg: Config) -> CacheTable:
    inputs = {"run": str(Path(cfg.train.out_dir).resolve()), "version": 2}
    # keyed by the evaluation's fingerprint: retrained weights or other settings add rows, never lose them
    keys = ("dataset", "run", "checkpoint", "evaluation", "split", "condition", "metric")
    return CacheTable(cfg.cache.root, cfg.dataset.name, STAGE, inputs, METRICS_SCHEMA, keys, cfg.cache.lock_timeout_s)


def eval_fingerprint(cfg: Config, checkpoint: Path) -> str:
    """What an evaluation's numbers depend on: the weights, the eval settings, the image size and the
    cached features it reads (their fingerprints and how many items each holds)."""
    import hashlib

    digest = hashlib.sha256((checkpoint / "model.safetensors").read_bytes())
    stores = {}
    for name in cfg.eval.conditions:
        st = open_stores(cfg, name)
        stores[name] = [st.audio.table.fingerprint, len(st.audio.keys()), st.text.table.fingerprint, len(st.text.keys())]
    digest.update(json.dumps(
        {"version": EVAL_VERSION, "eval": cfg.eval.model_dump(mode="json"), "image_size": cfg.train.image_size, "dataset": cfg.dataset.name, "stores": stores},
        sort_keys=True,
    ).encode())
    return digest.hexdigest()[:16]


def _previous_results(out_dir: Path, fingerprint: str) -> dict | None:
    """The results of an earlier evaluation with the same fingerprint, when all its files are there."""
    path = out_dir / "metrics.json"
    if not path.exists():
        return None
    try:
        results = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    if results.get("fingerprint") != fingerprint or not all(Path(g).exists() for g in results.get("grids", [])):
        return None
    results["reused"] = True
    return results


def run_eval(cfg: Config) -> dict:
    from pipeline.avsbench import read_label2idx

    e = cfg.eval
    device = torch.device("cuda" if cfg.features.device == "cuda" and torch.cuda.is_available() else "cpu")
    base = open_stores(cfg, "normal")
    model, ckpt = load_trained(cfg, base, e.checkpoint)
    model.to(device)
    num_labels = model.config.num_labels
    if e.cue_filter and num_labels == 1:
        raise ValueError("eval.cue_filter needs a semantic model (train.model.num_labels > 1): binary masks carry no class to filter")
    class_names = {v - 1: k for k, v in read_label2idx(cfg.dataset.root).items()}
    out_dir = Path(e.out_dir) if e.out_dir else Path(cfg.train.out_dir) / "eval"
    fingerprint = eval_fingerprint(cfg, ckpt)
    previous = _previous_results(out_dir, fingerprint)
    if previous is not None:
        return previous
    results: dict = {"checkpoint": str(ckpt), "split": e.split, "threshold": e.threshold, "conditions": {}, "fingerprint": fingerprint}
    outputs: dict[str, ConditionOutputs] = {}
    datasets = {}
    for name in e.conditions:
        stores = open_stores(cfg, name)
        samples, skipped = frame_samples(cfg, e.split, stores)
        if not samples:
            raise ValueError(f"no {e.split} frames with cached features for condition {name!r}; run `teso features`")
        ds = make_dataset(cfg, samples, stores, train=False, num_labels=num_labels)
        datasets[name] = ds
        outputs[name] = run_condition(model, ds, device)
        if num_labels == 1:
            results["conditions"][name] = binary_metrics(outputs[name], e.threshold)
        else:
            filt = _ranked_cues_rec1(cfg) if e.cue_filter else None
            results["conditions"][name] = semantic_metrics_table(outputs[name], num_labels, class_names, filt)
        results["conditions"][name]["skipped_without_features"] = skipped
    normal = results["conditions"].get("normal")
    if normal:
        for name, r in results["conditions"].items():
            for metric in ("miou", "fscore"):
                if metric in r and normal.get(metric):
                    r[f"{metric}_drop"] = (normal[metric] - r[metric]) / normal[metric]
    if "normal" in outputs:
        semantic_gts = _semantic_gts(datasets["normal"])
        results["cue_recognition"] = cue_recognition(cfg, outputs["normal"], semantic_gts, class_names)
        grids = write_grids(out_dir / "grids", datasets["normal"], outputs["normal"], outputs.get("mute"), e.threshold, e.grids)
        results["grids"] = [str(p) for p in grids]
    _write(cfg, results, out_dir)
    return results


def _semantic_gts(dataset) -> dict[tuple, torch.Tensor]:
    """Class maps of the evaluated frames (for cue recognition even when training was binary)."""
    from pipeline.avsbench import decode_mask

    out = {}
    for s in dataset.samples:
        if s.has_mask and s.mask_path:
            out[(s.subset, s.uid, s.frame)] = torch.from_numpy(decode_mask(s.mask_path, "semantic"))
    return out


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
    table = metrics_table(cfg)
    rows = pa.Table.from_pylist(_rows(cfg, results), schema=METRICS_SCHEMA)
    table.write(rows)
