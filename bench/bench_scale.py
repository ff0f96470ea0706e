"""`make bench-scale`: the data stages at AVSBench size and at 1/10 and 1/100 of it (not in `make test`).

    .venv/bin/python bench/bench_scale.py [--fractions 0.01 0.1 1] [--work DIR] [--out bench/scale.json]
    .venv/bin/python bench/bench_scale.py --table A.json [B.json ...]   # the table of saved runs, merged

Full size is the release's mix (metadata.csv of AVSBench, tests/fixtures/release): V1S 4,932 videos,
V1M 424, V2 6,000 over train/val/test, 11,356 videos, 86,780 frames (5 per V1 video, 10 per V2 video),
as synthetic 160-px frames. Per size, with the demo's CPU backends (configs/demo.yaml: reference
captions, cot_rules cues, log-mel audio in 6 conditions, bundled MiniLM):

- each stage in its own fresh process: index (manifest, full verification), captions, cues,
  audio features, text features: wall time, time per frame, peak resident memory (the process's
  VmHWM), rows computed, bytes and Parquet bytes the stage added to the cache;
- a refresh (every stage in one process) after +1% videos, after a further +10%, and with
  nothing new: the same measures, and what each stage computed.

The synthetic pool is generated once at the largest size needed; each size's dataset folder is a
hard-linked prefix of it (video i of a subset and split is the same at any size: the generator
plans each video from (subset, split, i) alone), so growing a dataset leaves the old files, and
their modification times, untouched, as new videos arriving would. The stages run in-process,
without Prefect (the flows only call them; bench_refresh.py measures the flow's own overhead).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# AVSBench as released (metadata.csv): videos per subset and split; frames per video
RELEASE = {"v1s": {"train": 3452, "val": 740, "test": 740}, "v1m": {"train": 296, "val": 64, "test": 64},
           "v2": {"train": 4750, "val": 500, "test": 750}}
FRAMES = {"v1s": 5, "v1m": 5, "v2": 10}
STAGES = ("index", "captions", "cues", "audio", "text")
GROWTH = (("+1%", 0.01), ("+10%", 0.10))


def counts(fraction: float, extra: float = 0.0) -> dict:
    """Videos per subset and split at `fraction` of the release, plus `extra` (a share of that size)
    more training videos in each subset."""
    out = {}
    for subset, splits in RELEASE.items():
        base = {split: max(1, round(n * fraction)) for split, n in splits.items()}
        base["train"] += round(sum(base.values()) * extra)
        out[subset] = base
    return out


def frames_of(videos: dict) -> int:
    return sum(FRAMES[s] * sum(splits.values()) for s, splits in videos.items())


def _bytes(folder: Path) -> tuple[int, int]:
    total = parquet = 0
    for p in folder.rglob("*"):
        if p.is_file():
            size = p.stat().st_size
            total += size
            parquet += size if p.suffix == ".parquet" else 0
    return total, parquet


def build_dataset(pool: Path, out: Path, videos: dict) -> None:
    """`out` = the first `videos` of each (subset, split) of the pool: folders hard-linked (new
    videos only), metadata and scene descriptions filtered (written whole, then renamed)."""
    wanted = {f"synth_{s}_{split}_{i:04d}" for s, splits in videos.items() for split, n in splits.items() for i in range(n)}
    out.mkdir(parents=True, exist_ok=True)
    header, *rows = (pool / "metadata.csv").read_bytes().decode().splitlines(keepends=True)  # line ends kept as written
    keep = [r for r in rows if r.split(",")[0] in wanted]
    uids = {r.split(",")[1]: r.rstrip().split(",")[-1] for r in keep}
    for uid, subset in uids.items():
        if not (out / subset / uid).exists():
            (out / subset).mkdir(exist_ok=True)
            shutil.copytree(pool / subset / uid, out / subset / uid, copy_function=os.link)
    descriptions = [line for line in (pool / "scene_descriptions.jsonl").read_text().splitlines(keepends=True)
                    if json.loads(line)["uid"] in uids]
    for name, text in (("metadata.csv", "".join([header, *keep])), ("scene_descriptions.jsonl", "".join(descriptions))):
        tmp = out / f".{name}.tmp"
        tmp.write_bytes(text.encode())
        tmp.replace(out / name)
    shutil.copy(pool / "label2idx.json", out / "label2idx.json")


# -- one stage in a fresh process --------------------------------------------------------------
def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mib() -> float:
    """This process's peak resident memory. VmHWM, not getrusage's ru_maxrss: Linux carries
    ru_maxrss over fork and exec, so a child started by a 600 MiB parent reports at least 600 MiB
    (tests/bench/test_bench_scale.py shows it); VmHWM belongs to the process's own address space."""
    return _status_mib("VmHWM")


def child(stage: str, root: str, cache: str) -> dict:
    from pipeline.config import load_config
    from pipeline.stages import captions, cues, features, lineage
    from pipeline.stages.manifest import run_manifest

    runs = {
        "index": lambda cfg: [run_manifest(cfg)],
        "captions": captions.STAGE.run,
        "cues": cues.STAGE.run,
        "audio": features.AUDIO.run,
        "text": features.TEXT.run,
    }
    cfg = load_config(str(ROOT / "configs/demo.yaml"), [f"dataset.root={root}", f"cache.root={cache}", "run.progress=false"])
    names = STAGES if stage == "refresh" else (stage,)
    out = {"stage": stage, "rss_after_imports_mib": _status_mib("VmRSS"), "stages": {}}
    t_all = time.perf_counter()
    with contextlib.ExitStack() as pinned:
        for name in names:
            out["stages"][name], result = _measured(runs[name], cfg, Path(cache))
            if stage == "refresh" and name == "index":  # as flows/refresh.py does: the stages plan from this indexing
                pinned.enter_context(lineage.pinned_manifest(cfg, result[0].rows))
    out["seconds"] = time.perf_counter() - t_all
    out["peak_rss_mib"] = peak_rss_mib()
    return out


def _measured(run, cfg, cache: Path) -> tuple[dict, list]:
    """One stage's measures, and what it returned."""
    from dataclasses import asdict

    before = _bytes(cache) if cache.exists() else (0, 0)
    t0 = time.perf_counter()
    result = run(cfg)
    seconds = time.perf_counter() - t0
    after = _bytes(cache)
    summaries = [r.stage if hasattr(r, "rows") else r for r in result]  # a ManifestRun holds its StageSummary
    return {
        "seconds": seconds,
        "computed": sum(s.computed for s in summaries),
        "cached": sum(s.cached for s in summaries),
        "errors": sum(s.errors for s in summaries),
        "rows_verified": sum(s.extra.get("rows_verified", 0) for s in summaries),
        "bytes_added": after[0] - before[0], "parquet_bytes_added": after[1] - before[1],
        "summaries": [asdict(s) for s in summaries],
        "peak_rss_mib_so_far": peak_rss_mib(),
    }, result


def run_child(stage: str, root: Path, cache: Path) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", stage, "--root", str(root), "--cache", str(cache)],
                          capture_output=True, text=True, env=os.environ | {"HF_HUB_OFFLINE": "1"})
    if proc.returncode:
        raise RuntimeError(f"stage {stage} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- the experiment ---------------------------------------------------------------------------
def run(fractions=(0.01, 0.1, 1.0), work: Path | None = None, keep: bool = False) -> dict:
    from pipeline.data.synth import SynthConfig, generate

    tmp = Path(tempfile.mkdtemp(prefix="bench-scale-", dir=work))
    try:
        # the largest dataset any step needs: the largest size after both growth steps
        steps = [counts(f, extra) for f in fractions for extra in (0.0, 0.01, 0.11)]
        pool_videos = {s: {split: max(v[s][split] for v in steps) for split in RELEASE[s]} for s in RELEASE}
        t0 = time.perf_counter()
        generate(tmp / "pool", SynthConfig(seed=0, size=160, videos=pool_videos, workers=os.cpu_count() or 1), progress=True)
        result = {"pool_frames": frames_of(pool_videos), "pool_generation_s": time.perf_counter() - t0, "sizes": []}
        for fraction in fractions:
            root, cache = tmp / f"data-{fraction}", tmp / f"cache-{fraction}"
            videos = counts(fraction)
            build_dataset(tmp / "pool", root, videos)
            size = {"fraction": fraction, "videos": sum(sum(s.values()) for s in videos.values()), "frames": frames_of(videos),
                    "stages": {}, "refresh": {}}
            for stage in STAGES:
                size["stages"][stage] = run_child(stage, root, cache)
                print(f"  1/{1 / fraction:g}: {stage} {size['stages'][stage]['seconds']:.1f} s, "
                      f"peak {size['stages'][stage]['peak_rss_mib']:.0f} MiB", flush=True)
            total_extra, before = 0.0, videos
            for label, extra in GROWTH:
                total_extra += extra
                grown = counts(fraction, total_extra)
                build_dataset(tmp / "pool", root, grown)
                size["refresh"][label] = run_child("refresh", root, cache) | {
                    "added_videos": sum(sum(s.values()) for s in grown.values()) - sum(sum(s.values()) for s in before.values()),
                    "added_frames": frames_of(grown) - frames_of(before)}
                before = grown
            size["refresh"]["nothing new"] = run_child("refresh", root, cache)
            result["sizes"].append(size)
            shutil.rmtree(cache, ignore_errors=True)
            shutil.rmtree(root, ignore_errors=True)
        return result
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)


def table(result: dict) -> str:
    """The README's scale table (markdown) and the targets' verdicts."""
    sizes = result["sizes"]
    lines = ["| stage | size | frames | wall (s) | ms / frame | peak RSS (MiB) | rows computed | MB added (Parquet) |",
             "|---|---|---|---|---|---|---|---|"]
    for stage in STAGES:
        for s in sizes:
            r = s["stages"][stage]
            st = r["stages"][stage]
            frames = s["stages"]["index"]["stages"]["index"]["rows_verified"]
            lines.append(f"| {stage} | 1/{1 / s['fraction']:g} | {frames:,} | {st['seconds']:.1f} | {1000 * st['seconds'] / frames:.2f} | "
                         f"{r['peak_rss_mib']:.0f} | {st['computed']:,} | {st['bytes_added'] / 1e6:.1f} ({st['parquet_bytes_added'] / 1e6:.1f}) |")
    lines += ["", "| size | refresh | added videos | wall (s) | share of the full run | peak RSS (MiB) | computed per stage |", "|---|---|---|---|---|---|---|"]
    for s in sizes:
        full = sum(s["stages"][st]["seconds"] for st in STAGES)
        for label, r in s["refresh"].items():
            done = ", ".join(f"{k} {v['computed']:,}" for k, v in r["stages"].items())
            lines.append(f"| 1/{1 / s['fraction']:g} | {label} | {r.get('added_videos', 0):,} | {r['seconds']:.1f} | "
                         f"{r['seconds'] / full:.1%} | {r['peak_rss_mib']:.0f} | {done} |")
    small, big = sizes[0], sizes[-1]
    lines.append("")
    for stage in STAGES:
        m = big["stages"][stage]["peak_rss_mib"] / small["stages"][stage]["peak_rss_mib"]
        t = (big["stages"][stage]["seconds"] / big["frames"]) / (small["stages"][stage]["seconds"] / small["frames"])
        lines.append(f"- {stage}: peak memory {m:.2f}x from 1/{1 / small['fraction']:g} to 1/{1 / big['fraction']:g} "
                     f"(target <= 1.5x); time per frame {t:.2f}x")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fractions", nargs="+", type=float, default=[0.01, 0.1, 1.0])
    ap.add_argument("--work", type=Path, default=None, help="folder for the data and caches (default: the system's temp folder)")
    ap.add_argument("--keep", action="store_true", help="keep the data and caches")
    ap.add_argument("--out", default="bench/scale.json")
    ap.add_argument("--table", nargs="+", type=Path, metavar="JSON",
                    help="print the table of saved results (sizes of several runs merged, smallest first) and stop")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--root", help=argparse.SUPPRESS)
    ap.add_argument("--cache", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.table:
        sizes = [size for path in args.table for size in json.loads(path.read_text())["sizes"]]
        print(table({"sizes": sorted(sizes, key=lambda size: size["fraction"])}))
        return 0
    if args.child:
        print(json.dumps(child(args.child, args.root, args.cache)))
        return 0
    result = run(tuple(args.fractions), args.work, args.keep)
    Path(args.out).write_text(json.dumps(result, indent=2, default=str))
    print(table(result))
    print(f"\nsaved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
