"""The results report: the runs of one experiment side by side, laid out like the paper's tables.

    {report.out_dir}/report.md      Markdown: tables, links to the pictures
    {report.out_dir}/report.html    one self-contained page (pictures embedded as data URIs)
    {report.out_dir}/report.json    the numbers behind the tables
    {report.out_dir}/curves.png     training loss per step and validation mIoU per epoch, every run
    {report.out_dir}/grids/*.png    qualitative grids of the main run (the first of report.runs)
    {report.out_dir}/cross_run_grids.png  the same test frames in every run: frame | ground truth |
                                    per run the prediction under normal and under muted audio
                                    (from the masks `teso eval` saves in {eval}/grids/masks/)

Tables (rows are runs; the first run is the main one):
  Table 1  mIoU / F per subset (S4 = v1s, MS3 = v1m, AVSS-binary = v2) and overall
  Table 3  cue recognition AP after the reasoner (REC#1) and after the dynamic mask (REC#2)
  Table 4  the audio-control test: mIoU / F under normal, muted and noisy audio, relative drops
  Table 5  ablations: mIoU / F of every run on normal audio

Everything is read from what `teso train` and `teso eval` wrote (metrics.jsonl, metrics.json); the
report computes no metric of its own.
"""
from __future__ import annotations

import base64
import html
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image

matplotlib.use("Agg")  # headless: the figures go to files
import matplotlib.pyplot as plt  # noqa: E402 (after choosing the backend)

from pipeline.common.atomic import atomic_path, atomic_write_text
from pipeline.config import Config, report_runs
from pipeline.evaluation.grids import masks_index_path, overlay, read_masks_index

STYLE = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}table{border-collapse:collapse;margin-bottom:1em}"
         "th,td{border:1px solid #bbb;padding:4px 8px;text-align:right}th:first-child,td:first-child{text-align:left}"
         "th{background:#eee}img{max-width:100%}")
SUBSET_NAMES = {"v1s": "S4 (v1s)", "v1m": "MS3 (v1m)", "v2": "AVSS-binary (v2)"}


@dataclass
class RunResults:
    name: str
    config: Config
    overrides: list[str]  # what distinguishes the run (cfg.runs[name])
    metrics: dict  # eval metrics.json
    curve: list[dict]  # training metrics.jsonl records
    eval_dir: Path | None = None  # where metrics.json was read

    @property
    def reference(self) -> dict:
        """The metrics under the run's reference condition (normal audio by default)."""
        return self.metrics["conditions"].get(self.config.eval.reference_condition, {})

    def label(self, condition: str) -> str:
        known = {c.name: c.label for c in self.config.features.audio.conditions}
        return known.get(condition, condition)


def _load_run(cfg: Config, name: str, rcfg: Config) -> RunResults:
    out = Path(rcfg.train.out_dir)
    eval_dir = Path(rcfg.eval.out_dir) if rcfg.eval.out_dir else out / "eval"
    metrics_path, curve_path = eval_dir / "metrics.json", out / "metrics.jsonl"
    for path, command in ((curve_path, "train"), (metrics_path, "eval")):
        if not path.exists():
            raise FileNotFoundError(f"run {name!r}: {path} is missing; run `teso {command}` for it first")
    curve = [json.loads(line) for line in curve_path.read_text().splitlines() if line.strip()]
    return RunResults(name, rcfg, list(cfg.runs.get(name, [])), json.loads(metrics_path.read_text()), curve, eval_dir)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:+.1f}%"


def frames_cell(m: dict) -> str:
    """'275 frames', or '190 frames (85 skipped: no features)' when the evaluation had to leave some out."""
    skipped = m.get("skipped_without_features") or 0
    frames = m.get("frames", "?")
    return f"{frames} frames" + (f" ({skipped} of {frames + skipped} skipped: no cached features)" if skipped else "")


def tables(runs: list[RunResults]) -> dict[str, dict]:
    """{table id: {"title", "header", "rows"}} with cells as display strings."""
    found = {s for r in runs for s in r.reference.get("by_subset", {})}
    subsets = [s for s in SUBSET_NAMES if s in found] + sorted(found - set(SUBSET_NAMES))  # the paper's order
    t1_header = ["run"] + [f"{SUBSET_NAMES.get(s, s)} {m}" for s in subsets for m in ("mIoU", "F")] + ["all mIoU", "all F"]
    t1_rows = []
    for r in runs:
        normal = r.reference
        cells = [r.name]
        for s in subsets:
            m = normal.get("by_subset", {}).get(s, {})
            cells += [_fmt(m.get("miou")), _fmt(m.get("fscore"))]
        t1_rows.append(cells + [_fmt(normal.get("miou")), _fmt(normal.get("fscore"))])

    t3_rows = []
    for r in runs:
        rec = r.metrics.get("cue_recognition", {})
        t3_rows.append([r.name, _fmt(rec.get("rec1_ap")), _fmt(rec.get("rec2_ap")), _fmt(rec.get("cue_kept_share"))])

    t4_rows = []
    for r in runs:
        for cond, m in r.metrics["conditions"].items():
            t4_rows.append([
                r.name, r.label(cond), _fmt(m.get("miou")), _fmt(m.get("fscore")),
                "-" if cond == r.config.eval.reference_condition else _pct(m.get("miou_drop")),
                "-" if cond == r.config.eval.reference_condition else _pct(m.get("fscore_drop")),
                frames_cell(m),
            ])

    t5_rows = [
        [r.name, ", ".join(r.overrides) or "(the config as it is)", _fmt(r.reference.get("miou")), _fmt(r.reference.get("fscore"))]
        for r in runs
    ]
    return {
        "table1": {"title": "Table 1: mIoU and F-score per subset (normal audio, test split)", "header": t1_header, "rows": t1_rows},
        "table3": {"title": "Table 3: cue recognition AP (REC#1 after the reasoner, REC#2 after the dynamic mask)",
                   "header": ["run", "REC#1 AP", "REC#2 AP", "share of cues kept"], "rows": t3_rows},
        "table4": {"title": "Table 4: audio-control test (relative drop = (normal - replaced) / normal)",
                   "header": ["run", "audio", "mIoU", "F", "Δ mIoU", "Δ F", "frames scored"], "rows": t4_rows},
        "table5": {"title": "Table 5: ablations (normal audio)", "header": ["run", "overrides", "mIoU", "F"], "rows": t5_rows},
    }


def plot_curves(runs: list[RunResults], path: Path) -> Path:
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(10, 3.6))
    for r in runs:
        steps = [rec for rec in r.curve if rec["kind"] == "step"]
        epochs = [rec for rec in r.curve if rec["kind"] == "epoch" and rec.get("val")]
        ax_loss.plot([s["step"] for s in steps], [s["loss"] for s in steps], label=r.name)
        if epochs:
            ax_val.plot([e["epoch"] for e in epochs], [e["val"]["miou"] for e in epochs], marker="o", label=r.name)
    ax_loss.set(title="training loss", xlabel="optimizer step", ylabel="loss")
    ax_val.set(title="validation mIoU", xlabel="epoch", ylabel="mIoU")
    for ax in (ax_loss, ax_val):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


CROSS_RUN_PNG = "cross_run_grids.png"
# the cross-run figure's layout, in inches at DPI dots per inch (whole pixels: 160 per cell)
CELL, LEFT, TOP, BOTTOM, PAD, DPI = 1.6, 0.4, 0.8, 0.1, 0.05, 100
GT_COLOUR, PRED_COLOUR = (40, 200, 60), (255, 40, 40)


def cross_run_size(rows: int, cols: int) -> tuple[int, int]:
    """(width, height) in pixels of a cross-run figure with `rows` frames and `cols` columns."""
    return round((LEFT + cols * CELL) * DPI), round((TOP + rows * CELL + BOTTOM) * DPI)


def run_masks(r: RunResults) -> Path | None:
    """The index of the grid masks the run's evaluation saved (metrics.json's "grid_masks", else the
    default place beside metrics.json), when it and its files are there."""
    candidates = [Path(r.metrics["grid_masks"])] if r.metrics.get("grid_masks") else []
    if r.eval_dir is not None:
        candidates.append(masks_index_path(r.eval_dir / "grids"))
    return next((p for p in candidates if read_masks_index(p) is not None), None)


def _read_mask(path: Path, size: tuple[int, int]) -> np.ndarray:
    mask = Image.open(path).convert("L")
    if mask.size != size:
        mask = mask.resize(size, Image.NEAREST)
    return np.asarray(mask) > 127


def plot_cross_run(runs: list[tuple[str, Path | None]], path: Path, n: int, subtitle: str = "") -> Path | None:
    """The same frames in every run, one row per frame (at most n, in the first listing run's order):
    frame | ground truth | for each run "{run} normal", "{run} muted" (the prediction under the
    reference condition and under muted audio). `runs`: (name, masks index path or None). A run
    without a frame's masks (not evaluated, evaluated before the masks were saved, no muted
    condition) gets a grey "not evaluated" cell. None, and no file, when no run has any masks."""
    indexes = {}
    for name, index_path in runs:
        index = read_masks_index(index_path) if index_path is not None else None
        if index is not None:
            indexes[name] = (index, Path(index_path).parent)
    frames: dict[tuple, tuple[dict, Path]] = {}  # frame key -> (its entry, folder), first run first
    for name, _ in runs:
        if name in indexes:
            index, folder = indexes[name]
            for f in index["frames"]:
                frames.setdefault((f["subset"], f["uid"], int(f["frame"])), (f, folder))
    keys = list(frames)[:n]
    if not keys:
        return None
    by_run = {name: {((m["subset"], m["uid"], int(m["frame"])), m["role"]): folder / m["file"] for m in index["masks"]}
              for name, (index, folder) in indexes.items()}
    columns = [("frame", None, None), ("ground truth", None, None)]
    columns += [(f"{name}\n{role}", name, role) for name, _ in runs for role in ("normal", "muted")]
    width, height = cross_run_size(len(keys), len(columns))
    w_in, h_in = width / DPI, height / DPI
    fig = plt.figure(figsize=(w_in, h_in), dpi=DPI)
    fig.suptitle("Same test frames across runs: the predicted mask (red) under normal and under muted audio\n"
                 f"ground truth in green{'; ' + subtitle if subtitle else ''}", fontsize=9, y=1 - 0.08 / h_in, va="top")
    for r, key in enumerate(keys):
        entry, folder = frames[key]
        frame = Image.open(folder / entry["image"]).convert("RGB")
        for c, (title, run, role) in enumerate(columns):
            x = (LEFT + c * CELL + PAD) / w_in
            y = (h_in - TOP - (r + 1) * CELL + PAD) / h_in
            ax = fig.add_axes((x, y, (CELL - 2 * PAD) / w_in, (CELL - 2 * PAD) / h_in))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=8)
            if c == 0:
                label = f"{key[0]}/{key[1]}"
                ax.set_ylabel(f"{label}\nframe {key[2]}", fontsize=7 if len(label) <= 24 else 6)  # AVSBench uids run long
            if run is None:
                image = frame if c == 0 else overlay(frame, _read_mask(folder / entry["gt"], frame.size), GT_COLOUR)
            else:
                mask_path = by_run.get(run, {}).get((key, role))
                if mask_path is None:
                    ax.set_facecolor("#e6e6e6")
                    ax.text(0.5, 0.5, "not evaluated", ha="center", va="center", fontsize=8, color="#666", transform=ax.transAxes)
                    continue
                image = overlay(frame, _read_mask(mask_path, frame.size), PRED_COLOUR)
            ax.imshow(np.asarray(image), interpolation="nearest")
    with atomic_path(path) as tmp:  # a killed report leaves the old picture or the new one
        fig.savefig(tmp, dpi=DPI, format="png")
    plt.close(fig)
    return path


def markdown_table(t: dict) -> str:
    lines = [f"**{t['title']}**", "", "| " + " | ".join(t["header"]) + " |", "|" + "---|" * len(t["header"])]
    lines += ["| " + " | ".join(row) + " |" for row in t["rows"]]
    return "\n".join(lines)


def html_table(t: dict) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in t["header"])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in t["rows"])
    return f"<h3>{html.escape(t['title'])}</h3><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def _intro(cfg: Config, runs: list[RunResults]) -> list[str]:
    main = runs[0]
    m = main.metrics
    return [
        f"Dataset `{cfg.dataset.name}` ({cfg.dataset.root}), split `{m['split']}`, mIoU threshold {m['threshold']}.",
        f"Runs: {', '.join(f'`{r.name}`' for r in runs)}; main run `{main.name}` (checkpoint `{m['checkpoint']}`).",
        f"Foundation `{main.config.train.model.get('foundation', 'default')}`; cues `{cfg.cues.backend}`; "
        f"audio `{cfg.features.audio.encoder}`; text `{cfg.features.text.encoder}`.",
    ]


def write_report(cfg: Config) -> dict:
    """Write the report of the config's runs (pipeline.config.report_runs); returns {"markdown", "html", "json", "tables"} paths and data."""
    out = Path(cfg.report.out_dir)
    runs = [_load_run(cfg, name, rcfg) for name, rcfg in report_runs(cfg)]
    if not runs:
        raise ValueError("report.runs is empty: nothing to report")
    t = tables(runs)
    curves = plot_curves(runs, out / "curves.png")
    grid_dir = out / "grids"
    if grid_dir.exists():
        shutil.rmtree(grid_dir)
    grid_dir.mkdir(parents=True)
    grids = []
    for src in [Path(g) for g in runs[0].metrics.get("grids", [])][: cfg.report.grids]:
        if src.exists():
            grids.append(Path(shutil.copy2(src, grid_dir / src.name)))
    cross_path = out / CROSS_RUN_PNG
    cross = plot_cross_run([(r.name, run_masks(r)) for r in runs], cross_path, cfg.report.grids,
                           f"split {runs[0].metrics['split']}, threshold {runs[0].metrics['threshold']}")
    if cross is None and cross_path.exists():
        cross_path.unlink()  # an earlier report's figure would show other runs
    cross_text = ("The same test frames in every run, one row per frame: the frame, its ground truth (green), then for each run "
                  "its predicted mask (red) under normal audio and under muted audio; grey cells were not evaluated."
                  if cross is not None else
                  "No run has saved grid masks (`teso eval` saves them; evaluations older than that are redone on the next `teso eval`).")

    intro = _intro(cfg, runs)
    md = ["# TeSO results", "", *intro, ""]
    for key in ("table1", "table4", "table5", "table3"):
        md += [markdown_table(t[key]), ""]
    md += ["## Training curves", "", f"![curves]({curves.relative_to(out)})", "", "## Qualitative results (main run)", "",
           "Each grid: frame | ground truth | prediction | prediction under muted audio | where each prompt steers the masks.", ""]
    md += [f"![{g.stem}]({g.relative_to(out)})" for g in grids]
    md += ["", "## Same frames across runs", "", cross_text, ""]
    md += [f"![same frames across runs]({cross.relative_to(out)})"] if cross is not None else []
    atomic_write_text(out / "report.md", "\n".join(md) + "\n")

    body = ["<h1>TeSO results</h1>", *[f"<p>{html.escape(line)}</p>" for line in intro]]
    body += [html_table(t[key]) for key in ("table1", "table4", "table5", "table3")]
    body += ["<h2>Training curves</h2>", f'<img alt="curves" src="{data_uri(curves)}">', "<h2>Qualitative results (main run)</h2>",
             "<p>frame | ground truth | prediction | prediction under muted audio | per-prompt heat maps</p>"]
    body += [f'<p>{html.escape(g.stem)}<br><img alt="{html.escape(g.stem)}" src="{data_uri(g)}"></p>' for g in grids]
    body += ["<h2>Same frames across runs</h2>", f"<p>{html.escape(cross_text)}</p>"]
    body += [f'<img alt="same frames across runs" src="{data_uri(cross)}">'] if cross is not None else []
    page = f"<!doctype html><html><head><meta charset='utf-8'><title>TeSO results</title><style>{STYLE}</style></head><body>{''.join(body)}</body></html>"
    atomic_write_text(out / "report.html", page)
    data = {"runs": {r.name: r.metrics for r in runs}, "tables": t}
    atomic_write_text(out / "report.json", json.dumps(data, indent=2, default=str))
    return {"markdown": out / "report.md", "html": out / "report.html", "json": out / "report.json", "tables": t, "cross_run": cross}
