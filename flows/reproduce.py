"""Prefect flow: the claims experiment (`teso reproduce`, `make reproduce`).

    synthetic data (when dataset.root is synth.out) -> the data stages of every distinct run
    -> small foundation -> every run of the report at every seed of reproduce.seeds: train, evaluate
    -> the claims report (pipeline/evaluation/reproduce_report.py)

Each (run, seed) trains into {parent of train.out_dir}/seed{seed}/{run} with train.recipe.seed =
seed, so a second `teso reproduce` resumes or reuses every training and evaluation.
"""
from __future__ import annotations

import time
from pathlib import Path

from prefect import flow

from flows.demo import synthetic_dataset
from flows.evaluate import eval_flow
from flows.refresh import refresh_runs
from flows.train import train_flow, train_in_parallel
from pipeline.config import Config, report_runs, seed_config
from pipeline.evaluation.reproduce_report import write_reproduce_report
from pipeline.model_io.foundation import ensure_foundation


@flow(name="reproduce", log_prints=True)
def reproduce_flow(cfg: Config) -> dict:
    t0 = time.perf_counter()
    runs = report_runs(cfg)
    seeds = list(cfg.reproduce.seeds)
    if Path(cfg.dataset.root).resolve() == Path(cfg.synth.out).resolve():
        synthetic_dataset(cfg)
    refresh_runs(runs)
    for _, rcfg in runs:
        ensure_foundation(rcfg)
    jobs = [(name, seed, seed_config(rcfg, seed)) for seed in seeds for name, rcfg in runs]
    print(f"{len(jobs)} trainings: runs {', '.join(n for n, _ in runs)} x seeds {seeds}")
    results: dict[str, dict[int, dict]] = {}
    out_dirs: dict[str, dict[int, Path]] = {}
    if cfg.run.parallel_trainings > 1 and len(jobs) > 1:  # each worker evaluates its run after training it
        reports = train_in_parallel([c for _, _, c in jobs], cfg.run.parallel_trainings, then_evaluate=True)
        for (name, seed, _), report in zip(jobs, reports):
            results.setdefault(name, {})[seed] = report["eval"]
    else:
        for name, seed, scfg in jobs:
            print(f"train {name} seed {seed} -> {scfg.train.out_dir}")
            train_flow(scfg)
            print(f"evaluate {name} seed {seed}")
            results.setdefault(name, {})[seed] = eval_flow(scfg)
    for name, seed, scfg in jobs:
        out_dirs.setdefault(name, {})[seed] = Path(scfg.train.out_dir)
    report = write_reproduce_report(cfg, results, out_dirs)
    for c in report["claims"]:
        print(f"{c['id']:>14}  {c['verdict']:<13} {c['claim']}  [{c['interval'] or '-'}]")
    print(f"claims report: {report['html']} ({time.perf_counter() - t0:.0f} s in all)")
    return {"report": str(report["html"]), "claims": {c["id"]: c["verdict"] for c in report["claims"]}}
