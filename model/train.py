"""The TeSO training recipe: one readable loop from a config and a dataset to checkpoints and curves.

    train(model_cfg, train_cfg, train_set, val_set, validate)
      set up ── seed, build the model (model/registry.py: TeSO or GAVS), AdamW over its two parameter groups, resume from `last`
      each epoch ── shuffle by (seed, epoch), gradient accumulation, AMP on CUDA, log every few steps,
                 ── the learning-rate schedule (lr_factor: a function of the global step alone)
                 ── validate (optional), checkpoint atomically, keep `best/` by the selected metric

Files (only rank 0 writes; the checkpoint layout is described in model/checkpoints.py):

    out_dir/metrics.jsonl                 one JSON per logged step interval and per epoch
    out_dir/summary.json                  final epoch, steps, best metric
    out_dir/checkpoints/                  epoch-{k}/ folders and the `last` pointer
    out_dir/best/                         the best validated epoch

Resuming restores the weights, the optimizer and every RNG stream, and the sampler and augmentation
depend only on (seed, epoch, index): a run stopped after epoch k and resumed ends with the same
weights and losses as one that never stopped.

Under torchrun (RANK/WORLD_SIZE set) the model is wrapped in DistributedDataParallel and every rank
reads batch_size / world_size samples per step, so the global batch is the same as on one process.
Each rank normalises the mask losses by its own number of masks (transformers' Mask2FormerLoss sums
them across processes only through `accelerate`), as the original Mask2Former trainer does per GPU;
with equal object counts per rank this is exactly the single-process loss.
"""
from __future__ import annotations

import json
import logging
import math
import os
import random
import re
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm.auto import tqdm

from model.checkpoints import (
    checkpoint_dir,
    forget_latest,
    latest_checkpoint,
    load_checkpoint,
    rng_state,
    save_best,
    save_checkpoint,
    set_rng_state,
)
from model.config import TeSOConfig, TrainConfig, lr_factor
from model.data import collate
from model.losses import binary_targets, semantic_targets
from model.registry import build_model
from model.segmenter import TeSOSegmenter
from pipeline.common.atomic import atomic_write_text

logger = logging.getLogger(__name__)

Validate = Callable[[TeSOSegmenter, Any], dict[str, float]]


@dataclass
class TrainResult:
    model: TeSOSegmenter  # final weights (not the best; those are in best/)
    out_dir: Path
    start_epoch: int  # epochs already done when this call began (from a checkpoint)
    global_step: int  # optimizer steps done in total
    step_losses: list[float] = field(default_factory=list)  # per optimizer step run by this call
    epoch_losses: list[float] = field(default_factory=list)  # per epoch run by this call
    val_history: list[dict[str, float]] = field(default_factory=list)  # per validated epoch of this call
    data_wait_share: list[float] = field(default_factory=list)  # per epoch: time blocked on the loader / step time
    best_metric: float | None = None
    best_epoch: int | None = None


# --- the recipe ---


def train(
    model_cfg: TeSOConfig,
    train_cfg: TrainConfig,
    train_set: Dataset,
    val_set: Any = None,
    validate: Validate | None = None,
    select_metric: str = "miou",
    resume: bool = True,
) -> TrainResult:
    """Train TeSO on `train_set` (items as model.data.AVSFrameDataset returns them) for train_cfg.epochs.

    validate(model, val_set) -> metrics runs after each epoch on rank 0 with the model in eval mode
    under no_grad; the epoch whose `select_metric` is highest is kept in out_dir/best/. With resume,
    training continues after the newest checkpoint in out_dir (if any) instead of starting over.
    """
    cfg = train_cfg
    ctx = _setup_distributed(cfg.device)
    try:
        return _train(model_cfg, cfg, ctx, train_set, val_set, validate, select_metric, resume)
    finally:
        if ctx.created_group:
            dist.destroy_process_group()


def _train(
    model_cfg: TeSOConfig,
    cfg: TrainConfig,
    ctx: _Dist,
    train_set: Dataset,
    val_set: Any,
    validate: Validate | None,
    select_metric: str,
    resume: bool,
) -> TrainResult:
    if cfg.batch_size % ctx.world_size:
        raise ValueError(f"batch_size {cfg.batch_size} is not divisible by the {ctx.world_size} processes")
    out_dir = Path(cfg.out_dir)
    if ctx.is_main:
        checkpoint_dir(out_dir).mkdir(parents=True, exist_ok=True)
    use_amp = cfg.amp and ctx.device.type == "cuda"

    # model, optimizer, and the state of a previous run
    _seed_all(cfg.seed)  # the same initial weights on every rank
    model = build_model(model_cfg).to(ctx.device)
    # fused: one kernel over all ~300 parameter tensors instead of a Python loop of small ops
    # (measured on the demo model, 1 CPU thread: 5 ms a step instead of 37 ms, ~13% of a step)
    optimizer = torch.optim.AdamW(
        model.param_groups(cfg.lr_visual_adapters, cfg.lr_other), weight_decay=cfg.weight_decay,
        fused=ctx.device.type in ("cpu", "cuda"),
    )
    base_lrs = {g["name"]: g["lr"] for g in optimizer.param_groups}  # before a checkpoint's rates replace them
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    start_epoch, global_step, best_metric, best_epoch = 0, 0, None, None
    checkpoint = latest_checkpoint(out_dir) if resume else None
    if checkpoint is not None:
        restored = load_checkpoint(checkpoint, model_cfg, model, optimizer, scaler, ctx.device)
        start_epoch, global_step = restored.epoch, restored.global_step
        best_metric, best_epoch = restored.best_metric, restored.best_epoch
        if len(restored.rng_states) == ctx.world_size:
            set_rng_state(restored.rng_states[ctx.rank])
        else:
            logger.warning(
                "checkpoint has RNG states of %d processes, this run has %d: reseeding, so the run will not "
                "repeat an uninterrupted one exactly",
                len(restored.rng_states), ctx.world_size,
            )
            _seed_all(cfg.seed + 1000 * start_epoch + ctx.rank)
        logger.info("resumed from %s (epoch %d, step %d)", checkpoint, start_epoch, global_step)
    else:
        _seed_all(cfg.seed + ctx.rank)  # distinct dropout / point-sampling streams per rank

    metrics_path = out_dir / "metrics.jsonl"
    if ctx.is_main:
        if not resume:  # a later resume must not mix this run with an older one's checkpoints
            forget_latest(out_dir)
        # Records past the checkpoint belong to an interrupted epoch that is about to be redone.
        kept = []
        if checkpoint is not None and metrics_path.exists():
            kept = [line for line in metrics_path.read_text().splitlines() if json.loads(line)["epoch"] <= start_epoch]
        atomic_write_text(metrics_path, "".join(line + "\n" for line in kept))

    # data, and the model wrapped for one or many processes
    ddp = (
        DistributedDataParallel(model, find_unused_parameters=True, broadcast_buffers=False)
        if ctx.world_size > 1
        else model
    )
    # One sampler for one or many processes: the permutation depends only on (seed, epoch).
    sampler = DistributedSampler(
        train_set, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=cfg.seed, drop_last=False
    )
    loader = DataLoader(
        train_set,
        batch_size=cfg.batch_size // ctx.world_size,
        sampler=sampler,
        num_workers=cfg.num_workers,
        collate_fn=collate,
        pin_memory=ctx.device.type == "cuda",
        # Forked workers die at start-up in a process that has run a Prefect flow (its server and
        # logging threads); forkserver workers start clean. Workers are not persistent, so each
        # epoch's set_epoch() reaches the fresh copies of the dataset.
        multiprocessing_context="forkserver" if cfg.num_workers > 0 else None,
    )
    if len(loader) == 0:
        raise ValueError("the training set is empty")
    result = TrainResult(
        model=model, out_dir=out_dir, start_epoch=start_epoch, global_step=global_step,
        best_metric=best_metric, best_epoch=best_epoch,
    )

    for epoch in range(start_epoch, cfg.epochs):
        sampler.set_epoch(epoch)
        if hasattr(train_set, "set_epoch"):
            train_set.set_epoch(epoch)
        epoch_loss = _train_epoch(
            ddp, model_cfg.num_labels, optimizer, base_lrs, scaler, loader, cfg, ctx, epoch, result, metrics_path
        )

        metrics: dict[str, float] = {}
        if validate is not None:
            metrics = _validate(model, val_set, validate, ctx)
            if select_metric not in metrics:
                raise ValueError(f"validate returned {sorted(metrics)}, without the selected metric {select_metric!r}")
            result.val_history.append(metrics)
        improved = bool(metrics) and (result.best_metric is None or metrics[select_metric] > result.best_metric)
        if improved:
            result.best_metric, result.best_epoch = float(metrics[select_metric]), epoch + 1

        rng_states = _gather_rng_states(ctx)
        if ctx.is_main:
            record = {
                "kind": "epoch", "epoch": epoch + 1, "step": result.global_step, "loss": epoch_loss,
                "data_wait_share": result.data_wait_share[-1], "val": metrics, "best": improved,
            }
            with metrics_path.open("a") as fh:
                fh.write(json.dumps(record) + "\n")
            logger.info("epoch %d/%d: loss %.4f %s", epoch + 1, cfg.epochs, epoch_loss, metrics)
            # best/ first: a crash in between redoes this epoch, which rewrites the same best/.
            if improved:
                save_best(model, out_dir, epoch + 1, metrics, select_metric)
            save_checkpoint(
                out_dir, epoch + 1, model, optimizer, scaler, rng_states, model_cfg, cfg,
                result.global_step, result.best_metric, result.best_epoch, select_metric,
            )
        if ctx.world_size > 1:
            dist.barrier()  # no rank starts the next epoch before the checkpoint exists

    if ctx.is_main:
        summary = {
            "epochs": cfg.epochs, "global_step": result.global_step, "select_metric": select_metric,
            "best_metric": result.best_metric, "best_epoch": result.best_epoch,
        }
        atomic_write_text(out_dir / "summary.json", json.dumps(summary, indent=2))
    return result


def _train_epoch(
    ddp: torch.nn.Module,
    num_labels: int,
    optimizer: torch.optim.Optimizer,
    base_lrs: dict[str, float],
    scaler: torch.amp.GradScaler,
    loader: DataLoader,
    cfg: TrainConfig,
    ctx: _Dist,
    epoch: int,
    result: TrainResult,
    metrics_path: Path,
) -> float:
    """One pass over the loader; appends to result and metrics.jsonl, returns the epoch's mean step loss."""
    ddp.train()
    use_amp = cfg.amp and ctx.device.type == "cuda"
    n_batches = len(loader)
    steps_per_epoch = math.ceil(n_batches / cfg.grad_accum)
    losses: list[float] = []
    interval_loss: list[float] = []
    interval_terms: dict[str, torch.Tensor] = {}
    step_loss = torch.zeros((), device=ctx.device)
    wait_s = busy_s = 0.0
    desc = f"{Path(cfg.out_dir).name} epoch {epoch + 1}/{cfg.epochs}"  # the run's name: runs may train side by side
    progress = tqdm(total=n_batches, desc=desc, disable=not (ctx.is_main and cfg.progress), leave=False)
    batches = iter(loader)
    for i in range(n_batches):
        t0 = time.perf_counter()
        batch = _to_device(next(batches), ctx.device)
        t1 = time.perf_counter()
        group_start = i - i % cfg.grad_accum
        group_size = min(cfg.grad_accum, n_batches - group_start)  # the last group may be short
        last_in_group = i == group_start + group_size - 1
        sync = nullcontext() if last_in_group or ctx.world_size == 1 else ddp.no_sync()
        with sync:
            with torch.autocast(device_type=ctx.device.type, dtype=torch.float16, enabled=use_amp):
                loss, terms = batch_loss(ddp, batch, num_labels)
            scaler.scale(loss / group_size).backward()
        step_loss += loss.detach() / group_size
        for name, value in terms.items():
            interval_terms[name] = interval_terms.get(name, 0) + value / group_size
        if last_in_group:
            factor = lr_factor(cfg.lr_schedule, result.global_step, cfg.epochs * steps_per_epoch,
                               cfg.warmup_steps, cfg.lr_min_ratio)
            for group in optimizer.param_groups:
                group["lr"] = base_lrs[group["name"]] * factor
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            if ctx.world_size > 1:
                dist.all_reduce(step_loss)  # the global batch's loss, for the log
                step_loss /= ctx.world_size
            value = float(step_loss)
            step_loss.zero_()
            result.global_step += 1
            result.step_losses.append(value)
            losses.append(value)
            interval_loss.append(value)
            progress.set_postfix(loss=f"{value:.4f}")
            if result.global_step % cfg.log_every == 0 or i == n_batches - 1:
                if ctx.is_main:
                    record = {
                        "kind": "step", "epoch": epoch + 1, "step": result.global_step,
                        "loss": float(np.mean(interval_loss)),
                        # the terms are rank 0's share of the batch; "loss" is the global batch's
                        **{k: float(v) / len(interval_loss) for k, v in interval_terms.items()},
                        "lr": {g["name"]: g["lr"] for g in optimizer.param_groups},
                    }
                    with metrics_path.open("a") as fh:
                        fh.write(json.dumps(record) + "\n")
                interval_loss, interval_terms = [], {}
        if ctx.device.type == "cuda":
            torch.cuda.synchronize(ctx.device)  # so busy time is the step's, not the next wait's
        t2 = time.perf_counter()
        wait_s, busy_s = wait_s + (t1 - t0), busy_s + (t2 - t1)
        progress.update()
    progress.close()
    result.epoch_losses.append(float(np.mean(losses)))
    result.data_wait_share.append(wait_s / max(wait_s + busy_s, 1e-12))
    return result.epoch_losses[-1]


def _validate(model: TeSOSegmenter, val_set: Any, validate: Validate, ctx: _Dist) -> dict[str, float]:
    """Rank 0 validates; the others wait and receive its metrics."""
    box: list[Any] = [None]
    if ctx.is_main:
        model.eval()
        with torch.no_grad():
            box[0] = {k: float(v) for k, v in validate(model, val_set).items()}
        model.train()
    if ctx.world_size > 1:
        dist.broadcast_object_list(box, src=0)
    return box[0]


# --- batches ---


def batch_loss(
    model: torch.nn.Module, batch: dict[str, Any], num_labels: int
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Forward one collated batch (already on the model's device) with its loss; frames without a mask
    are left out. Returns the total loss and the weighted terms, each summed over decoder layers."""
    keep = batch["has_mask"]  # (B,)
    if not bool(keep.any()):
        raise ValueError(
            "a training batch has no frame with a mask; filter the samples with build_training_samples"
        )
    masks = batch["mask"][keep]  # (B', H, W)
    if num_labels == 1:
        mask_labels, class_labels = binary_targets(masks)
    else:
        mask_labels, class_labels = semantic_targets(masks, num_labels)
    out = model(
        pixel_values=batch["pixel_values"][keep],
        audio=batch["audio"][keep],
        cues=batch["cues"][keep],
        cue_valid=batch["cue_valid"][keep],
        mask_labels=mask_labels,
        class_labels=class_labels,
    )
    grouped: dict[str, torch.Tensor] = {}
    for name, value in out.loss_terms.items():
        base = re.sub(r"_\d+$", "", name)  # loss_dice_0, loss_dice_1, ... -> loss_dice
        grouped[base] = grouped.get(base, 0) + value.detach()
    return out.loss, grouped


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


# --- processes, devices, RNG ---


@dataclass
class _Dist:
    rank: int
    world_size: int
    device: torch.device
    created_group: bool

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _setup_distributed(device: str) -> _Dist:
    """One process, or one rank of a torchrun launch (RANK / WORLD_SIZE / LOCAL_RANK in the environment)."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return _Dist(0, 1, torch.device(device), False)
    use_cuda = device.startswith("cuda")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
    created = not dist.is_initialized()
    if created:
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return _Dist(dist.get_rank(), world_size, torch.device(f"cuda:{local_rank}" if use_cuda else "cpu"), created)


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _gather_rng_states(ctx: _Dist) -> list[dict[str, Any]]:
    """Every rank's RNG states in rank order (a collective: every rank calls it; rank 0 saves them)."""
    rng_states: list[Any] = [None] * ctx.world_size
    if ctx.world_size > 1:
        dist.all_gather_object(rng_states, rng_state())
    else:
        rng_states = [rng_state()]
    return rng_states
