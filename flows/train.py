"""Prefect flow: train TeSO from the cached features (pipeline.stages.train, model.train).

Under torchrun (several processes, DDP) `teso train` calls the recipe directly in every rank
instead: one Prefect flow run per rank would only duplicate bookkeeping.
"""
from __future__ import annotations

from prefect import flow

from flows.manifest import index
from pipeline.config import Config
from pipeline.stages.train import run_training


def train_and_report(cfg: Config, resume: bool = True) -> dict:
    index(cfg)
    result, skipped = run_training(cfg, resume=resume)
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
