"""`make bench`: every benchmark side by side with its baseline, as ratios; JSON saved.

    .venv/bin/python bench/run_all.py [--quick] [--out bench/results.json]

Each entry runs its module's `run(quick)`; a module that is missing or fails is reported as such
(with the error), never silently dropped.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _metrics(r):
    return [("metrics: vectorized vs per-frame/threshold loop", r["vectorized_s"], r["loop_s"], r["speedup"], ">= 20x", f"max diff {r['max_abs_diff']:.1e}")]


def _audio(r):
    return [("audio: batched front end + VGGish vs torchvggish per file", r["ours_s"], r["reference_s"], r["speedup"], ">= 3x",
             f"max diff {r['max_abs_diff']:.1e}; VGG at {r['network_gflops_ours']} vs {r['network_gflops_reference']} GFLOP/s, "
             f"{r['network_share_of_gemm']:.0%} of this machine's measured fp32 GEMM ({r['gemm_gflops_measured']} GFLOP/s)")]


def _train(r):
    s = r["step_time"]
    rows = [("train step: TeSO vs adapters-only Mask2Former", s["step_s_fastest"]["teso"], s["step_s_fastest"]["adapters_only"], s["ratio"], "<= 1.10x", f"median ratio {s['ratio_median']:.2f}")]
    for workers, share in r["data_wait"]["data_wait_share_by_num_workers"].items():
        rows.append((f"train: share of step waiting for data ({workers} workers)", share, None, None, "< 5%", ""))
    return rows


def _duckdb(r):
    return [(f"DuckDB query over {r['rows']:,}-row cue table vs pyarrow", r["duckdb_query_s"], r["pyarrow_s"], r["ratio_pyarrow_over_duckdb"], "", "")]


def _captioning(r):
    n = r["noop"]
    return [
        ("captioning: batch 8 vs one at a time (per frame)", r["batched_s_per_frame"], r["single_s_per_frame"], r["speedup"], ">= 4x", ""),
        (f"captions flow: re-run with nothing new vs first run ({n['frames']} frames)", n["rerun_s"], n["first_s"], n["rerun_share"], "< 5%",
         f"model loaded on re-run: {n['rerun_loaded_model']}"),
    ]


def _refresh(r):
    n = f"{r['videos']} videos"
    return [
        (f"refresh: +{r['added_videos']} videos vs full refresh ({n})", r["incremental_s"], r["full_s"], r["incremental_over_full"], "<= 15%",
         f"computed on +: {r['computed']['incremental']['manifest']} videos, {r['computed']['incremental']['text']} frames"),
        (f"refresh: nothing new vs full refresh ({n})", r["noop_s"], r["full_s"], r["noop_over_full"], "", ""),
    ]


def _memory(r):
    return [(f"memory: {row['mode']} at {row['image_size']}px, batch {'/'.join(row['peak_mib'])} (MiB)", None, None, None, "",
             " / ".join(f"{v:,.0f}" for v in row["peak_mib"].values()) + f"; model {row['model_mib']:.0f} MiB; {r['measure']}")
            for row in r["rows"]]


BENCHES = {
    "bench_metrics": _metrics,
    "bench_audio_frontend": _audio,
    "bench_train": _train,
    "bench_duckdb": _duckdb,
    "bench_captioning": _captioning,
    "bench_refresh": _refresh,
    "bench_memory": _memory,
}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke run, ratios less meaningful)")
    ap.add_argument("--out", default="bench/results.json")
    ap.add_argument("--only", nargs="*", help="module names to run")
    args = ap.parse_args()
    results, rows = {}, []
    for name, extract in BENCHES.items():
        if args.only and name not in args.only:
            continue
        t0 = time.perf_counter()
        try:
            results[name] = importlib.import_module(name).run(quick=args.quick)
            rows += extract(results[name])
        except Exception as exc:
            results[name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
            rows.append((f"{name}: FAILED ({type(exc).__name__}: {exc})", None, None, None, "", ""))
        results[name + "_wall_s"] = time.perf_counter() - t0
    fmt = lambda v, suffix="": "-" if v is None else f"{v:.4g}{suffix}"
    print(f"\n{'benchmark':62} {'ours (s)':>10} {'baseline (s)':>13} {'ratio':>8}  target   note")
    for label, ours, base, ratio, target, note in rows:
        print(f"{label[:62]:62} {fmt(ours):>10} {fmt(base):>13} {fmt(ratio, 'x'):>8}  {target:8} {note}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2, default=str))
    print(f"\nsaved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
