"""Benchmark: batched audio features vs torchvggish's own per-file path.

Ours: `VGGishEncoder.encode` (vectorised torch log-mel over a batch of clips, then VGGish on
batches of examples in channels_last, only the examples that survive the per-second fit).
Reference: per clip, `torchvggish.waveform_to_examples` (numpy) + the per-second fit + one forward
of torchvggish's VGG (under no_grad, to be fair to it). Same random weights in both (no pretrained
weights exist here), same synthetic clips of 5-10 s. The two paths alternate `repeats` times and
the fastest run of each counts, since the CPU may be shared. Reports wall times, their ratio, the
front ends alone, and the largest embedding gap.

    .venv/bin/python bench/bench_audio_frontend.py [--quick] [--device cuda]
"""
from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np
import torch
from torchvggish import vggish_input
from torchvggish.torchvggish import VGG, make_layers

from pipeline.features.audio_encoders import LogMelFrontend, VGGishEncoder, fit_seconds


def make_clips(n: int, min_s: float, max_s: float, seed: int = 0) -> tuple[list[np.ndarray], list[int]]:
    """n clips of noise plus three random tones; each video lasts the clip's whole seconds."""
    rng = np.random.default_rng(seed)
    waves, seconds = [], []
    for _ in range(n):
        duration = rng.uniform(min_s, max_s)
        t = np.arange(int(duration * 16000)) / 16000
        tones = sum(rng.uniform(0.05, 0.3) * np.sin(2 * np.pi * rng.uniform(100, 6000) * t) for _ in range(3))
        waves.append((tones + 0.05 * rng.standard_normal(len(t))).astype(np.float32))
        seconds.append(int(duration))
    return waves, seconds


def reference_encode(network: torch.nn.Module, waves: list[np.ndarray], seconds: list[int], device: str) -> list[np.ndarray]:
    out = []
    for wave, t in zip(waves, seconds):
        examples = fit_seconds(vggish_input.waveform_to_examples(wave, 16000).detach(), t)  # (T, 1, 96, 64)
        with torch.no_grad():
            out.append(network(examples.to(device)).cpu().numpy())
    return out


def macs_per_example(network: torch.nn.Module) -> int:
    """Multiply-accumulates of one (1, 96, 64) example through the network's convolutions and linears."""
    total = 0

    def count(module, inputs, output):
        nonlocal total
        if isinstance(module, torch.nn.Conv2d):
            total += output.numel() * module.in_channels * module.kernel_size[0] * module.kernel_size[1] // module.groups
        elif isinstance(module, torch.nn.Linear):
            total += output.numel() * module.in_features

    hooks = [m.register_forward_hook(count) for m in network.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        network(torch.zeros(1, 1, 96, 64, device=next(network.parameters()).device))
    for h in hooks:
        h.remove()
    return total


def gemm_gflops(device: str, n: int = 2048, repeats: int = 5) -> float:
    """This machine's float32 matrix-multiply rate with the same torch and threads (best of
    `repeats` n x n x n products): the limit the VGG path's rate is compared with, measured in the
    same run rather than computed from a data sheet."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    torch.mm(a, b)  # warm-up: thread pool, kernels
    best = min(_timed(lambda: torch.mm(a, b), device)[0] for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _timed(fn, device: str):
    if device != "cpu":
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = fn()
    if device != "cpu":
        torch.cuda.synchronize()
    return time.perf_counter() - start, result


def run(quick: bool = False, device: str = "cpu", repeats: int = 3) -> dict:
    n_clips, (min_s, max_s), repeats = (6, (2.0, 3.5), 1) if quick else (40, (5.0, 10.5), repeats)
    waves, seconds = make_clips(n_clips, min_s, max_s)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the random-weights warning is expected here
        encoder = VGGishEncoder(allow_random_weights=True, seed=0, device=device)
    reference_net = VGG(make_layers(), postprocess=False).eval()  # plain torchvggish, same weights
    reference_net.load_state_dict(encoder.network.state_dict())
    reference_net.to(device)
    frontend = LogMelFrontend().to(device)

    def our_frontend():
        return frontend(torch.nn.utils.rnn.pad_sequence([torch.from_numpy(w) for w in waves], batch_first=True).to(device))

    def reference_frontend():
        return [vggish_input.waveform_to_examples(w, 16000) for w in waves]

    encoder.encode(waves[:2], seconds[:2])  # warm-up: oneDNN / cuDNN primitive creation
    reference_encode(reference_net, waves[:2], seconds[:2], device)
    times = {"ours": [], "reference": [], "frontend_ours": [], "frontend_reference": []}
    for _ in range(repeats):
        seconds_taken, ours = _timed(lambda: encoder.encode(waves, seconds), device)
        times["ours"].append(seconds_taken)
        seconds_taken, reference = _timed(lambda: reference_encode(reference_net, waves, seconds, device), device)
        times["reference"].append(seconds_taken)
        with torch.inference_mode():
            times["frontend_ours"].append(_timed(our_frontend, device)[0])
        times["frontend_reference"].append(_timed(reference_frontend, device)[0])
    best = {k: min(v) for k, v in times.items()}

    gap = max(float(np.abs(a - b).max()) for a, b in zip(ours, reference))
    # The network's arithmetic rate on each path: close to the CPU's peak means batching cannot buy more.
    flops = 2 * macs_per_example(reference_net) * int(sum(seconds))
    scale = max(float(np.abs(b).max()) for b in reference)
    peak = gemm_gflops(device)
    network_ours = flops / max(best["ours"] - best["frontend_ours"], 1e-9) / 1e9
    return {
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "clips": n_clips,
        "audio_seconds": round(sum(len(w) for w in waves) / 16000, 1),
        "examples": int(sum(seconds)),
        "repeats": repeats,
        "ours_s": round(best["ours"], 3),
        "reference_s": round(best["reference"], 3),
        "speedup": round(best["reference"] / best["ours"], 2),
        "frontend_ours_s": round(best["frontend_ours"], 4),
        "frontend_reference_s": round(best["frontend_reference"], 4),
        "frontend_speedup": round(best["frontend_reference"] / best["frontend_ours"], 2),
        "vggish_gflop_per_example": round(flops / sum(seconds) / 1e9, 3),
        "network_gflops_ours": round(network_ours, 1),
        "gemm_gflops_measured": round(peak, 1),
        "network_share_of_gemm": round(network_ours / peak, 3),
        "network_gflops_reference": round(flops / max(best["reference"] - best["frontend_reference"], 1e-9) / 1e9, 1),
        "max_abs_diff": gap,
        "max_abs_embedding": scale,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="6 short clips, one run: a smoke test")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(run(quick=args.quick, device=args.device, repeats=args.repeats), indent=2))
