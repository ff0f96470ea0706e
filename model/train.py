"""The TeSO training recipe: one readable loop from a config and a dataset to checkpoints and curves.

    train(model_cfg, train_cfg, train_set, val_set, validate)
      set up ── seed, build TeSOSegmenter, AdamW over its two parameter groups, resume from `last`
      each epoch ── shuffle by (seed, epoch), gradient accumulation, AMP on CUDA, log every few steps
                 ── validate (optional), checkpoint atomically, keep `best/` by the selected metric

Checkpoints (only rank 0 writes; every folder is written under a temporary name, then renamed):

    out_dir/metrics.jsonl                 one JSON per logged step interval and per epoch
    out_dir/summary.json                  final epoch, steps, best metric
    out_dir/checkpoints/last              name of the newest complete checkpoint folder
    out_dir/checkpoints/epoch-{k}/        after k epochs: model.safetensors (trainable weights only),
                                          optimizer.pt (AdamW + GradScaler), rng.pt (every rank's
                                          python/numpy/torch/cuda RNG states), state.json
    out_dir/best/                         model.safetensors + state.json of the best validated epoch

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
import os
import random
import re
import shutil
import time
import uuid
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm.auto import tqdm

from model.config import TeSOConfig, TrainConfig
from model.data import collate
from model.losses import binary_targets, semantic_targets
from model.segmenter import TeSOSegmenter

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


def _rng_state() -> dict[str, Any]:
    """This process's RNG states in types `torch.load(weights_only=True)` accepts."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --- checkpoints ---


def _write_folder_atomically(final: Path, write: Callable[[Path], None]) -> None:
    """Write a folder under a temporary name, then swap it in; readers never see a half-written one."""
    tmp = final.parent / f".{final.name}.{uuid.uuid4().hex[:8]}.tmp"
    tmp.mkdir(parents=True)
    try:
        write(tmp)
        for file in tmp.iterdir():  # on disk before the rename makes the folder visible
            with open(file, "rb") as fh:
                os.fsync(fh.fileno())
        old = None
        if final.exists():
            old = final.parent / f".{final.name}.{uuid.uuid4().hex[:8]}.old"
            final.rename(old)
        tmp.rename(final)
        if old is not None:
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def _write_text_atomically(path: Path, text: str) -> None:
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
    tmp.write_text(text)
    os.replace(tmp, path)


def _save_weights(model: TeSOSegmenter, path: Path) -> None:
    save_file({k: v.detach().cpu().contiguous() for k, v in model.trainable_state_dict().items()}, str(path))


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    """The folder the `last` pointer names, or None when no checkpoint was completed."""
    pointer = Path(out_dir) / "checkpoints" / "last"
    if not pointer.exists():
        return None
    folder = pointer.parent / pointer.read_text().strip()
    if not (folder / "state.json").exists():
        raise ValueError(f"{pointer} names {folder.name}, which is missing or incomplete")
    return folder


def _config_mismatch(saved: dict[str, Any], model_cfg: TeSOConfig) -> list[str]:
    current = model_cfg.to_dict()
    return [f"{k}: checkpoint {saved.get(k)!r}, now {v!r}" for k, v in current.items() if saved.get(k) != v]


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
    ckpt_dir = out_dir / "checkpoints"
    if ctx.is_main:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
    use_amp = cfg.amp and ctx.device.type == "cuda"

    _seed_all(cfg.seed)  # the same initial weights on every rank
    model = TeSOSegmenter(model_cfg).to(ctx.device)
    optimizer = torch.optim.AdamW(
        model.param_groups(cfg.lr_visual_adapters, cfg.lr_other), weight_decay=cfg.weight_decay
    )
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    start_epoch, global_step, best_metric, best_epoch = 0, 0, None, None
    checkpoint = latest_checkpoint(out_dir) if resume else None
    if checkpoint is not None:
        state = json.loads((checkpoint / "state.json").read_text())
        mismatch = _config_mismatch(state["model_config"], model_cfg)
        if mismatch:
            raise ValueError(f"{checkpoint} was trained with another TeSOConfig: " + "; ".join(mismatch))
        model.load_trainable_state_dict(load_file(str(checkpoint / "model.safetensors"), device=str(ctx.device)))
        opt_state = torch.load(checkpoint / "optimizer.pt", map_location=ctx.device, weights_only=True)
        optimizer.load_state_dict(opt_state["optimizer"])
        scaler.load_state_dict(opt_state["scaler"])
        start_epoch, global_step = state["epoch"], state["global_step"]
        best_metric, best_epoch = state["best_metric"], state["best_epoch"]
        rng = torch.load(checkpoint / "rng.pt", weights_only=True)
        if len(rng) == ctx.world_size:
            _set_rng_state(rng[ctx.rank])
        else:
            logger.warning(
                "checkpoint has RNG states of %d processes, this run has %d: reseeding, so the run will not "
                "repeat an uninterrupted one exactly",
                len(rng), ctx.world_size,
            )
            _seed_all(cfg.seed + 1000 * start_epoch + ctx.rank)
        logger.info("resumed from %s (epoch %d, step %d)", checkpoint, start_epoch, global_step)
    else:
        _seed_all(cfg.seed + ctx.rank)  # distinct dropout / point-sampling streams per rank

    metrics_path = out_dir / "metrics.jsonl"
    if ctx.is_main:
        if not resume:  # a later resume must not mix this run with an older one's checkpoints
            (ckpt_dir / "last").unlink(missing_ok=True)
        # Records past the checkpoint belong to an interrupted epoch that is about to be redone.
        kept = []
        if checkpoint is not None and metrics_path.exists():
            kept = [line for line in metrics_path.read_text().splitlines() if json.loads(line)["epoch"] <= start_epoch]
        _write_text_atomically(metrics_path, "".join(line + "\n" for line in kept))

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
            ddp, model_cfg.num_labels, optimizer, scaler, loader, cfg, ctx, epoch, result, metrics_path
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

        rng_states = [None] * ctx.world_size
        if ctx.world_size > 1:
            dist.all_gather_object(rng_states, _rng_state())
        else:
            rng_states = [_rng_state()]
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
                _save_best(model, out_dir / "best", epoch + 1, metrics, select_metric)
            _save_checkpoint(model, optimizer, scaler, rng_states, model_cfg, cfg, result, epoch + 1, select_metric)
        if ctx.world_size > 1:
            dist.barrier()  # no rank starts the next epoch before the checkpoint exists

    if ctx.is_main:
        summary = {
            "epochs": cfg.epochs, "global_step": result.global_step, "select_metric": select_metric,
            "best_metric": result.best_metric, "best_epoch": result.best_epoch,
        }
        _write_text_atomically(out_dir / "summary.json", json.dumps(summary, indent=2))
    return result


def _train_epoch(
    ddp: torch.nn.Module,
    num_labels: int,
    optimizer: torch.optim.Optimizer,
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
    losses: list[float] = []
    interval_loss: list[float] = []
    interval_terms: dict[str, torch.Tensor] = {}
    step_loss = torch.zeros((), device=ctx.device)
    wait_s = busy_s = 0.0
    desc = f"{Path(cfg.out_dir).name} epoch {epoch + 1}/{cfg.epochs}"  # the run's name: runs may train side by side
    progress = tqdm(total=n_batches, desc=desc, disable=not ctx.is_main, leave=False)
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


def _save_checkpoint(
    model: TeSOSegmenter,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    rng_states: list[dict[str, Any]],
    model_cfg: TeSOConfig,
    cfg: TrainConfig,
    result: TrainResult,
    epoch: int,
    select_metric: str,
) -> None:
    ckpt_dir = result.out_dir / "checkpoints"
    state = {
        "epoch": epoch,
        "global_step": result.global_step,
        "best_metric": result.best_metric,
        "best_epoch": result.best_epoch,
        "select_metric": select_metric,
        "world_size": len(rng_states),
        "model_config": model_cfg.to_dict(),
        "train_config": asdict(cfg),
    }

    def write(folder: Path) -> None:
        _save_weights(model, folder / "model.safetensors")
        torch.save({"optimizer": optimizer.state_dict(), "scaler": scaler.state_dict()}, folder / "optimizer.pt")
        torch.save(rng_states, folder / "rng.pt")
        (folder / "state.json").write_text(json.dumps(state, indent=2))

    _write_folder_atomically(ckpt_dir / f"epoch-{epoch}", write)
    _write_text_atomically(ckpt_dir / "last", f"epoch-{epoch}\n")
    if cfg.keep_checkpoints:
        done = sorted(
            (p for p in ckpt_dir.glob("epoch-*") if p.is_dir() and p.name[6:].isdigit()),
            key=lambda p: int(p.name[6:]),
        )
        for old in done[: -cfg.keep_checkpoints]:
            shutil.rmtree(old)


def _save_best(model: TeSOSegmenter, folder: Path, epoch: int, metrics: dict[str, float], select_metric: str) -> None:
    def write(tmp: Path) -> None:
        _save_weights(model, tmp / "model.safetensors")
        info = {"epoch": epoch, "select_metric": select_metric, "metrics": metrics}
        (tmp / "state.json").write_text(json.dumps(info, indent=2))

    _write_folder_atomically(folder, write)
