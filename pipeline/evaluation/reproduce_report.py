"""The report of `teso reproduce`: the claims with their verdicts, every metric's mean and interval
over seeds, a chart of the claims with their intervals, and the validation curves of every seed.

Written to `reproduce.out_dir`: reproduce.md, a self-contained reproduce.html, reproduce.json (every
per-seed number, so a table elsewhere can be generated from it), claims.png and curves.png.
"""
from __future__ import annotations

import html
import json
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from pipeline.common.atomic import atomic_path, atomic_write_text
from pipeline.config import Config
from pipeline.evaluation.claims import CONTRADICTED, HOLDS, NOT_RUN, Results, check_claims, metric_rows
from pipeline.evaluation.report import STYLE, data_uri, html_table, markdown_table

COLOURS = {HOLDS: "#2e7d32", CONTRADICTED: "#c62828"}  # anything else: grey
README_BEGIN, README_END = "<!-- results:begin (scripts/readme_results.py writes this block) -->", "<!-- results:end -->"


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10, cwd=Path(__file__).parent)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _threads(cfg: Config) -> int:
    """Torch threads each training ran with: one each when trainings run side by side (flows/train.py)."""
    return 1 if cfg.run.parallel_trainings > 1 else torch.get_num_threads()


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:  # a killed run leaves the old picture or the new one
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def _plot_claims(claims: list[dict], path: Path) -> Path:
    shown = [c for c in claims if c["interval"] is not None]
    fig, ax = plt.subplots(figsize=(9, 0.5 + 0.45 * max(1, len(shown))))
    for i, c in enumerate(shown):
        iv = c["interval"]
        colour = COLOURS.get(c["verdict"], "#757575")
        ax.barh(i, iv.mean, color=colour, alpha=0.6)
        ax.errorbar(iv.mean, i, xerr=[[iv.mean - iv.low], [iv.high - iv.mean]], fmt="none", ecolor="black", capsize=3)
        ax.scatter(c["values"], [i] * len(c["values"]), color="black", s=8, zorder=3)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(range(len(shown)), [f"{c['id']}: {c['tested']}" for c in shown], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("tested quantity (above 0: the claim's direction); bars: mean and interval, dots: seeds")
    fig.tight_layout()
    return _save(fig, path)


def _curves(out_dirs: dict[str, dict[int, Path]]) -> tuple[dict[str, list[dict]], dict[str, dict[int, float | None]]]:
    """{run: [{seed, epochs, val miou}]} from each run's metrics.jsonl, and the last-epoch change of
    validation mIoU per run and seed (None with fewer than two validated epochs)."""
    curves: dict[str, list[dict]] = {}
    last_change: dict[str, dict[int, float | None]] = {}
    for run, by_seed in out_dirs.items():
        for seed, out in sorted(by_seed.items()):
            path = out / "metrics.jsonl"
            records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
            val = [(r["epoch"], r["val"]["miou"]) for r in records if r.get("kind") == "epoch" and r.get("val")]
            curves.setdefault(run, []).append({"seed": seed, "epochs": [e for e, _ in val], "miou": [v for _, v in val]})
            last_change.setdefault(run, {})[seed] = val[-1][1] - val[-2][1] if len(val) >= 2 else None
    return curves, last_change


def _plot_curves(curves: dict[str, list[dict]], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for k, (run, seeds) in enumerate(curves.items()):
        for j, c in enumerate(seeds):
            ax.plot(c["epochs"], c["miou"], color=f"C{k}", alpha=0.8, marker="o", markersize=3, label=run if j == 0 else None)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation mIoU")
    ax.set_title("validation mIoU, one line per seed")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return _save(fig, path)


def write_reproduce_report(cfg: Config, results: Results, out_dirs: dict[str, dict[int, Path]]) -> dict:
    """`results[run][seed]` are the evaluations, `out_dirs[run][seed]` the training folders."""
    out = Path(cfg.reproduce.out_dir)
    e = cfg.eval
    conditions = [cfg.features.audio.condition(name) for name in e.conditions]
    mute = next((c.name for c in conditions if c.kind == "mute"), None)
    noises = {c.name: c.label for c in conditions if c.kind == "wgn" and c.mode == "replace"}  # C5: noise-only audio
    claims = check_claims(results, dict(cfg.reproduce.roles), e.reference_condition, mute, noises)
    rows = metric_rows(results)
    curves, last_change = _curves(out_dirs)
    seeds = sorted({s for by_seed in results.values() for s in by_seed})
    head = [
        f"Config: dataset `{cfg.dataset.name}`, split `{e.split}`, reference audio `{e.reference_condition}`, mIoU threshold {e.threshold}.",
        f"Seeds {seeds} ({len(seeds)}; train.recipe.seed: model init, data order, augmentation; the data stay fixed); "
        f"runs {', '.join(f'`{r}`' for r in results)}; torch threads per training {_threads(cfg)}; "
        f"commit {_commit()}; {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.",
        "Intervals: " + ("95% Student-t over seeds." if len(seeds) >= 5 else "min-max over seeds (fewer than 5 seeds)."),
        "Verdicts are computed from the numbers (pipeline/evaluation/claims.py): holds = the tested quantity is above 0 over the "
        "whole interval, contradicted = below 0 over it, not shown = otherwise, not run = a run it needs is not in the experiment.",
    ]

    def values(v: list[float]) -> str:
        return ", ".join(f"{x:.3f}" for x in v)

    claims_table = {"title": "Claims (test split)", "header": ["claim", "statement", "tested quantity", "per seed", "mean [interval]", "verdict"],
                    "rows": [[c["id"], c["claim"], c["tested"], values(c["values"]) or "-", str(c["interval"] or "-"),
                              c["verdict"] + (f" (missing run {', '.join(c['missing'])})" if c["verdict"] == NOT_RUN else "")] for c in claims]}
    metrics_table = {"title": "Every metric over seeds", "header": ["run", "audio", "metric", "n", "mean [interval]", "per seed"],
                     "rows": [[r["run"], r["condition"], r["metric"], str(r["interval"].n), str(r["interval"]), values(r["values"])] for r in rows]}
    change_table = {"title": "Convergence: change of validation mIoU over the last epoch", "header": ["run", "per seed"],
                    "rows": [[run, ", ".join("-" if v is None else f"{v:+.3f}" for _, v in sorted(by_seed.items()))] for run, by_seed in last_change.items()]}
    claims_png = _plot_claims(claims, out / "claims.png")
    curves_png = _plot_curves(curves, out / "curves.png")

    md = ["# TeSO claims over seeds", "", *head, ""]
    md += [markdown_table(claims_table), "", "![claims](claims.png)", "", markdown_table(change_table), "", "![curves](curves.png)", "",
           markdown_table(metrics_table)]
    atomic_write_text(out / "reproduce.md", "\n".join(md) + "\n")
    body = ["<h1>TeSO claims over seeds</h1>", *[f"<p>{html.escape(line)}</p>" for line in head], html_table(claims_table),
            f'<img alt="claims" src="{data_uri(claims_png)}">', html_table(change_table), f'<img alt="curves" src="{data_uri(curves_png)}">',
            html_table(metrics_table)]
    page = f"<!doctype html><html><head><meta charset='utf-8'><title>TeSO claims</title><style>{STYLE}td,th{{text-align:left}}</style></head><body>{''.join(body)}</body></html>"
    atomic_write_text(out / "reproduce.html", page)
    data = {
        "seeds": seeds, "torch_threads": _threads(cfg), "commit": _commit(), "date": f"{datetime.now(timezone.utc):%Y-%m-%d}",
        "reference_condition": e.reference_condition,
        "claims": [c | {"interval": None if c["interval"] is None else vars(c["interval"])} for c in claims],
        "metrics": [r | {"interval": vars(r["interval"])} for r in rows],
        "last_epoch_change": last_change,
        "runs": {run: {str(s): m for s, m in by_seed.items()} for run, by_seed in results.items()},
    }
    atomic_write_text(out / "reproduce.json", json.dumps(data, indent=2, default=str))
    return {"markdown": out / "reproduce.md", "html": out / "reproduce.html", "json": out / "reproduce.json", "claims": claims}


def readme_block(data: dict, config_name: str) -> str:
    """The README's results block from a reproduce.json: where the numbers come from, the claims
    with their verdicts, and the headline metrics of every run, each with its interval."""
    rows = {(m["run"], m["condition"], m["metric"]): m for m in data["metrics"]}
    runs = list(data["runs"])

    def cell(run: str, cond: str, metric: str) -> str:
        m = rows.get((run, cond, metric))
        if m is None:
            return "-"
        iv = m["interval"]
        return f"{iv['mean']:.3f} [{iv['low']:.3f}, {iv['high']:.3f}]"

    first = next(iter(data["runs"][runs[0]].values()))
    reference = data["reference_condition"]
    others = [c for c in first["conditions"] if c != reference]
    kind = next((m["interval"]["kind"] for m in data["metrics"]), "min-max")
    lines = [
        README_BEGIN,
        f"`make reproduce CONFIG={config_name}` at commit {data['commit']}, {data.get('date', '')}: {len(data['seeds'])} seeds "
        f"{data['seeds']}, {data['torch_threads']} torch thread(s) per training; mean [{kind} interval] over seeds, test split.",
        "",
        "| claim | tested quantity | mean [interval] | verdict |",
        "|---|---|---|---|",
    ]
    for c in data["claims"]:
        iv = c["interval"]
        shown = "-" if iv is None else f"{iv['mean']:+.3f} [{iv['low']:+.3f}, {iv['high']:+.3f}]"
        lines.append(f"| {c['id']}: {c['claim']} | {c['tested']} | {shown} | {c['verdict']} |")
    lines += ["", "| run | mIoU | " + " | ".join(f"drop ({c})" for c in others) + " | REC#1 | REC#2 | kept share |",
              "|---|---|" + "---|" * len(others) + "---|---|---|"]
    for run in runs:
        lines.append(f"| {run} | {cell(run, reference, 'miou')} | " + " | ".join(cell(run, c, "miou_drop") for c in others)
                     + f" | {cell(run, '-', 'rec1_ap')} | {cell(run, '-', 'rec2_ap')} | {cell(run, '-', 'cue_kept_share')} |")
    per_seed = []
    for run in runs:
        shares = rows.get((run, "-", "cue_kept_share"))
        if shares is not None:
            per_seed.append(f"kept share of `{run}` per seed {shares['seeds']}: " + ", ".join(f"{v:.3f}" for v in shares["values"]) + ".")
    for run, by_seed in data.get("last_epoch_change", {}).items():
        changes = ", ".join("-" if v is None else f"{v:+.3f}" for _, v in sorted(by_seed.items(), key=lambda kv: int(kv[0])))
        per_seed.append(f"validation mIoU change over the last epoch of `{run}` per seed: {changes}.")
    if per_seed:
        lines += ["", *per_seed]
    lines.append(README_END)
    return "\n".join(lines)


def replace_readme_block(text: str, block: str) -> str:
    """`text` with the results block replaced (the markers must be there exactly once)."""
    if text.count(README_BEGIN) != 1 or text.count(README_END) != 1:
        raise ValueError(f"the README needs exactly one results block, {README_BEGIN!r} ... {README_END!r}")
    head, rest = text.split(README_BEGIN)
    _, tail = rest.split(README_END)
    return head + block + tail
