"""Benchmark: peak memory of a TeSO training step and of evaluation, against batch size and image size.

    .venv/bin/python bench/bench_memory.py [--quick] [--device cuda] [--out bench/memory.json]
    .venv/bin/python bench/bench_memory.py --table bench/memory_runs/FILE.json   # the table of a saved run

The model is bench_train.py's: Mask2Former at its real widths with a Swin-T backbone (random
weights, frozen as in the paper configs) and the paper's SeDAM; --quick shrinks it. A training step
is forward, loss, backward and an AdamW step (its moment buffers are created there); evaluation is
the forward pass under no_grad, as pipeline/model_io/inference.py runs it.

Each (mode, image size) runs in a fresh process, its batch sizes in ascending order:
- CPU: the process's peak resident memory (VmHWM) after the step, less its resident memory just
  before the first step (the model built and in memory), so a row is what the step itself adds:
  activations, gradients, optimizer state. A peak never falls, so ascending batch sizes make each
  row that batch's peak. The weights are made resident before that baseline; their size
  (parameters and buffers) is reported once per process.
- CUDA: torch.cuda.max_memory_allocated over the step, reset before each batch size; it includes
  the weights (they live on the GPU), which are also reported alone. PyTorch's cache reserves more
  than it allocates; the reserved peak is reported beside it.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

FULL = {"image_sizes": [224, 384], "batch_sizes": [1, 2, 4, 8]}  # the paper configs train at 224, batch 8
QUICK = {"image_sizes": [64, 96], "batch_sizes": [1, 2]}


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(mode: str, foundation: str, quick: bool, device: str, size: int, batch_sizes: list[int]) -> dict:
    """One process: build the model, then one step per batch size; MiB per batch size."""
    import torch
    from transformers.utils import logging as hf_logging

    from bench_train import random_batch, teso_config
    from model.segmenter import TeSOSegmenter
    from model.train import batch_loss

    hf_logging.set_verbosity_error()
    cuda = device.startswith("cuda")
    torch.manual_seed(0)
    model = TeSOSegmenter(teso_config(foundation, quick, prompts=True)).to(device)
    model.train(mode == "train")
    optimizer = torch.optim.AdamW(model.param_groups(), weight_decay=0.05) if mode == "train" else None
    with torch.no_grad():  # from_pretrained may memory-map the weights: make them resident before the baseline
        for t in (*model.parameters(), *model.buffers()):
            t.sum()
    after_model = torch.cuda.memory_allocated() if cuda else _status_mib("VmRSS")
    out = {"mode": mode, "image_size": size, "device": device,
           "model_mib": sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers())) / 2**20,
           "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
           "total_params": sum(p.numel() for p in model.parameters()), "peak_mib": {}, "reserved_mib": {}}
    for b in batch_sizes:
        batch = random_batch(b, size, model.config.text_dim, device)
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        if mode == "train":
            loss, _ = batch_loss(model, batch, num_labels=1)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        else:
            with torch.no_grad():
                model(batch["pixel_values"], batch["audio"], batch["cues"], batch["cue_valid"])
        if cuda:
            torch.cuda.synchronize()
            out["peak_mib"][b] = torch.cuda.max_memory_allocated() / 2**20
            out["reserved_mib"][b] = torch.cuda.max_memory_reserved() / 2**20
        else:
            out["peak_mib"][b] = _status_mib("VmHWM") - after_model
        del batch
    return out


def run(quick: bool = False, device: str = "cpu") -> dict:
    from bench_train import make_foundation

    grid = QUICK if quick else FULL
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        foundation = make_foundation(Path(tmp) / "m2f", quick)
        for mode in ("train", "eval"):
            for size in grid["image_sizes"]:
                cmd = [sys.executable, __file__, "--child", mode, "--foundation", foundation, "--device", device,
                       "--size", str(size), "--batch-sizes", *map(str, grid["batch_sizes"])] + (["--quick"] if quick else [])
                proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ | {"HF_HUB_OFFLINE": "1"})
                if proc.returncode:
                    raise RuntimeError(f"{mode} at {size}px failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
                rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    import torch

    return {"device": device, "torch_threads": torch.get_num_threads(),
            "model": "small Mask2Former (quick)" if quick else "Mask2Former Swin-T widths, random weights, frozen; paper SeDAM",
            "measure": "torch.cuda.max_memory_allocated (weights included)" if device.startswith("cuda")
            else "peak RSS (VmHWM) less RSS with the model built",
            "rows": rows}


def table(result: dict) -> str:
    """Markdown: one row per mode and image size, one column per batch size."""
    batches = sorted({int(b) for r in result["rows"] for b in r["peak_mib"]})
    lines = [f"| mode | image | model (MiB) | " + " | ".join(f"batch {b}" for b in batches) + " |",
             "|---|---|---|" + "---|" * len(batches)]
    for r in result["rows"]:
        peaks = {int(b): v for b, v in r["peak_mib"].items()}
        lines.append(f"| {r['mode']} | {r['image_size']}px | {r['model_mib']:.0f} | "
                     + " | ".join(f"{peaks[b]:,.0f}" if b in peaks else "" for b in batches) + " |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default="bench/memory.json")
    ap.add_argument("--table", type=Path, metavar="JSON", help="print the table of a saved result and stop")
    ap.add_argument("--child", choices=["train", "eval"], help=argparse.SUPPRESS)
    ap.add_argument("--foundation", help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--batch-sizes", type=int, nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.foundation, args.quick, args.device, args.size, args.batch_sizes)))
        return 0
    if args.table:
        print(table(json.loads(args.table.read_text())))
        return 0
    result = run(args.quick, args.device)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(table(result))
    print(f"\nsaved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
