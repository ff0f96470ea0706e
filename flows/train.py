"""Prefect flow: train TeSO from the cached features (pipeline.stages.train, model.train).

Under torchrun (several processes, DDP) `teso train` calls the recipe directly in every rank
instead: one Prefect flow run per rank would only duplicate bookkeeping.
"""
from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import torch
from prefect import flow

from flows import prefect_env
from flows.manifest import indexed
from pipeline.config import Config, report_runs
from pipeline.stages import evaluate, train


def train_and_report(cfg: Config, resume: bool = True) -> dict:
    with indexed(cfg):
        result, skipped = train.STAGE.run(cfg, resume=resume)
    report = {
        "out_dir": str(result.out_dir),
        "start_epoch": result.start_epoch,
        "global_step": result.global_step,
        "epoch_losses": result.epoch_losses,
        "val_history": result.val_history,
        "best_metric": result.best_metric,
        "best_epoch": result.best_epoch,
        "frames_without_features": skipped,
    }
    print(f"trained: {report}")
    return report


@flow(name="train", log_prints=True)
def train_flow(cfg: Config, resume: bool = True) -> dict:
    return train_and_report(cfg, resume)


def _train_one(rcfg: Config, resume: bool = True, then_evaluate: bool = False) -> dict:
    """One run's training in a worker process (no Prefect flow: the parent's flow run covers it);
    with then_evaluate its evaluation too, under "eval", so it overlaps the other runs' training."""
    # One thread each: two processes with torch's default two threads on 2 cores run at 40% of the
    # speed (spinning OpenMP threads contend). CPU kernels split their sums by thread count, so the
    # floats, and after a few epochs the model, differ from a sequential run's.
    torch.set_num_threads(1)
    if not rcfg.run.progress:
        prefect_env.quiet_libraries()
    with indexed(rcfg):  # one reading of the folder for both
        report = train_and_report(rcfg, resume)
        if then_evaluate:
            report["eval"] = evaluate.STAGE.run(rcfg)
    return report


def train_in_parallel(configs: list[Config], processes: int, resume: bool = True, then_evaluate: bool = False) -> list[dict]:
    """Train several runs at once in spawned processes; their reports in the order given (with
    then_evaluate each also holds the run's evaluation results under "eval"). A run that fails
    raises here after the others finish (each run checkpoints and resumes on its own)."""
    # spawn: a forked child would inherit this process's Prefect server and logging threads
    with ProcessPoolExecutor(max_workers=min(processes, len(configs)), mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_train_one, c, resume, then_evaluate) for c in configs]
        return [f.result() for f in futures]


def train_runs(cfg: Config, resume: bool = True) -> dict[str, dict]:
    """Every run the report covers (report.runs; the config itself when it has no runs), by name:
    `run.parallel_trainings` at a time in their own processes, or one after another."""
    runs = report_runs(cfg)
    if cfg.run.parallel_trainings > 1 and len(runs) > 1:
        reports = train_in_parallel([r for _, r in runs], cfg.run.parallel_trainings, resume)
    else:
        reports = [train_flow(r, resume) for _, r in runs]
    return {name: report for (name, _), report in zip(runs, reports)}
