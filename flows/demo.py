"""Prefect flow: the whole experiment of one config, from data to the report (`teso demo`, `make demo`).

    synthetic data (when dataset.root is synth.out) -> index -> captions -> cues -> features
    (once per distinct data configuration among the runs: TeSO-n reads noun cues)
    -> small foundation (when train.model.foundation is foundation.out)
    -> for each run of the report (report.runs; default every entry of runs):
           train, evaluate under every audio condition (with run.parallel_trainings > 1 each
           worker process trains and then evaluates its run, beside the others)
    -> report

Every step reuses its cache: a second run recomputes nothing (training resumes at its last epoch,
evaluation reuses metrics whose fingerprint matches) and rewrites only the report.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from prefect import flow

from flows.evaluate import eval_flow
from flows.refresh import refresh_runs
from flows.train import train_flow, train_in_parallel
from pipeline.config import Config, report_runs
from pipeline.data import synth
from pipeline.evaluation.report import write_report
from pipeline.model_io.foundation import ensure_foundation, is_own_small_foundation


def _banner(step: int, total: int, text: str) -> None:
    print(f"[{step}/{total}] {text}")


def synthetic_dataset(cfg: Config) -> None:
    """Generate the synthetic dataset unless the same generator code and settings already wrote it
    (a stamp in the cache says so; re-rendering only to find identical bytes costs ~15 s)."""
    gen = cfg.synth.generator_config()
    stamp = Path(cfg.cache.root) / cfg.dataset.name / "synth_stamp.json"
    wanted = json.dumps({
        "out": str(Path(cfg.synth.out).resolve()), "config": asdict(gen), "code": synth.source_sha256(),
    }, sort_keys=True, default=str)
    if stamp.exists() and stamp.read_text() == wanted and (Path(cfg.synth.out) / "metadata.csv").exists():
        print(f"synthetic dataset: unchanged (stamp {stamp})")
        return
    summary = synth.generate(cfg.synth.out, gen, progress=cfg.run.progress)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(wanted)
    print(f"synthetic dataset: {summary['frames']} frames, {'written' if summary['changed'] else 'unchanged'}")


@flow(name="demo", log_prints=True)
def demo_flow(cfg: Config) -> dict:
    runs = report_runs(cfg)
    parallel = cfg.run.parallel_trainings > 1 and len(runs) > 1
    total = 5 if parallel else 4 + 2 * len(runs)
    step = 1
    t0 = time.perf_counter()
    if Path(cfg.dataset.root).resolve() == Path(cfg.synth.out).resolve():
        _banner(step, total, f"synthetic dataset -> {cfg.synth.out}")
        synthetic_dataset(cfg)
    step += 1
    _banner(step, total, "index, captions, cues, features")
    stages = refresh_runs(runs)
    step += 1
    if any(is_own_small_foundation(rcfg) for _, rcfg in runs):
        _banner(step, total, f"small random foundations -> {cfg.foundation.out}, {cfg.foundation.sam_out}")
    for _, rcfg in runs:  # each run's own (TeSO: Mask2Former; GAVS: SAM)
        ensure_foundation(rcfg)
    step += 1
    evaluated = {}
    if parallel:
        _banner(step, total, f"train and evaluate runs {', '.join(n for n, _ in runs)} ({cfg.run.parallel_trainings} at a time)")
        reports = train_in_parallel([r for _, r in runs], cfg.run.parallel_trainings, then_evaluate=True)
        for name, report in zip((n for n, _ in runs), reports):
            evaluated[name] = report.pop("eval")
            print(f"trained {name}: {report}")
            print(f"evaluated {name}: " + ", ".join(f"{c} mIoU {r['miou']:.4f}" for c, r in evaluated[name]["conditions"].items() if "miou" in r))
        step += 1
    else:
        for name, rcfg in runs:
            _banner(step, total, f"train run {name!r} -> {rcfg.train.out_dir}")
            train_flow(rcfg)
            step += 1
            _banner(step, total, f"evaluate run {name!r} under {', '.join(rcfg.eval.conditions)}")
            evaluated[name] = eval_flow(rcfg)
            step += 1
    _banner(step, total, f"report -> {cfg.report.out_dir}")
    report = write_report(cfg)
    print(f"report written: {report['markdown']} and {report['html']} ({time.perf_counter() - t0:.0f} s in all)")
    return {"report": str(report["html"]), "stages": stages, "runs": {n: r["conditions"] for n, r in evaluated.items()}}
