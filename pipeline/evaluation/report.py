"""The results report: the runs of one experiment side by side, laid out like the paper's tables.

    {report.out_dir}/report.md      Markdown: tables, links to the pictures
    {report.out_dir}/report.html    one self-contained page (pictures embedded as data URIs)
    {report.out_dir}/report.json    the numbers behind the tables
    {report.out_dir}/curves.png     training loss per step and validation mIoU per epoch, every run
    {report.out_dir}/grids/*.png    qualitative grids of the main run (the first of report.runs)

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

matplotlib.use("Agg")  # headless: the figures go to files
import matplotlib.pyplot as plt  # noqa: E402 (after choosing the backend)

from pipeline.common.atomic import atomic_write_text
from pipeline.config import Config, report_runs

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
    return RunResults(name, rcfg, list(cfg.runs.get(name, [])), json.loads(metrics_path.read_text()), curve)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:+.1f}%"


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
                   "header": ["run", "audio", "mIoU", "F", "Δ mIoU", "Δ F"], "rows": t4_rows},
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

    intro = _intro(cfg, runs)
    md = ["# TeSO results", "", *intro, ""]
    for key in ("table1", "table4", "table5", "table3"):
        md += [markdown_table(t[key]), ""]
    md += ["## Training curves", "", f"![curves]({curves.relative_to(out)})", "", "## Qualitative results (main run)", "",
           "Each grid: frame | ground truth | prediction | prediction under muted audio | where each prompt steers the masks.", ""]
    md += [f"![{g.stem}]({g.relative_to(out)})" for g in grids]
    atomic_write_text(out / "report.md", "\n".join(md) + "\n")

    body = ["<h1>TeSO results</h1>", *[f"<p>{html.escape(line)}</p>" for line in intro]]
    body += [html_table(t[key]) for key in ("table1", "table4", "table5", "table3")]
    body += ["<h2>Training curves</h2>", f'<img alt="curves" src="{data_uri(curves)}">', "<h2>Qualitative results (main run)</h2>",
             "<p>frame | ground truth | prediction | prediction under muted audio | per-prompt heat maps</p>"]
    body += [f'<p>{html.escape(g.stem)}<br><img alt="{html.escape(g.stem)}" src="{data_uri(g)}"></p>' for g in grids]
    page = f"<!doctype html><html><head><meta charset='utf-8'><title>TeSO results</title><style>{STYLE}</style></head><body>{''.join(body)}</body></html>"
    atomic_write_text(out / "report.html", page)
    data = {"runs": {r.name: r.metrics for r in runs}, "tables": t}
    atomic_write_text(out / "report.json", json.dumps(data, indent=2, default=str))
    return {"markdown": out / "report.md", "html": out / "report.html", "json": out / "report.json", "tables": t}
