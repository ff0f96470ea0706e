#!/usr/bin/env python3
"""Fault campaign: kill every stage at random points, run stages concurrently, damage a cache part,
change an input, and check after each that nothing was lost, duplicated, left half-written or
computed differently from an undisturbed run.

    make chaos                                   (= .venv/bin/python scripts/chaos.py)
    .venv/bin/python scripts/chaos.py --kills-per-stage 4 --seed 0 [--work DIR] [--keep]

On the tiny config (configs/tiny.yaml) with a larger synthetic dataset, every stage through the
`teso` command line in its own process group (Prefect's temporary server included), on CPU:
  1. an undisturbed run: index, captions, cues, features, train and eval of run `teso`, into cache A;
  2. the campaign into cache B, over the same dataset: each of captions, cues, features, train and
     eval is started and SIGKILLed at a random point of its undisturbed work (after the command's
     start-up), `--kills-per-stage` times (evaluation afresh each time), then finished by two concurrent processes of that stage on the one cache; a part file of
     the cues table is truncated; a video's soundtrack is replaced by another's and then restored;
  3. after every fault: every Parquet part under the cache reads, and no table holds a key twice;
     after every completion: no temporary is left, and at the end the caches' rows, the features and
     the evaluation equal the undisturbed run's.
Prints one line per fault and a summary table; exits 1 if any check failed.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from pipeline.data.synth import SynthConfig, generate  # noqa: E402

STAGES = ("captions", "cues", "features", "train", "eval")
VIDEOS = {"v1s": {"train": 8, "val": 2, "test": 2}, "v1m": {"train": 3, "val": 1, "test": 2}, "v2": {"train": 3, "val": 1, "test": 2}}
VOLATILE = {"created_at", "seconds", "video_sig", "shard", "offset"}  # differ between equal runs by design


def teso(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "flows.cli", *args], cwd=REPO, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def command(stage: str, overrides: list[str]) -> list[str]:
    run = ["--run", "teso"] if stage in ("train", "eval") else []
    return [stage, "--config", "configs/tiny.yaml", *run, *overrides]


def finish(procs: list[subprocess.Popen]) -> list[int]:
    codes = []
    for p in procs:
        _, err = p.communicate()
        if p.returncode:
            print(err[-2000:], file=sys.stderr)
        codes.append(p.returncode)
    return codes


# -- checks -----------------------------------------------------------------------------------
def parts(cache: Path) -> list[Path]:
    return sorted(cache.glob("*/*/*/part-*.parquet"))


def integrity(cache: Path) -> list[str]:
    """Problems: an unreadable part, a key held twice by one table."""
    problems, keys = [], {}
    for part in parts(cache):
        try:
            table = pq.read_table(part)
        except Exception as exc:  # noqa: BLE001 (any failure to read is the finding)
            problems.append(f"unreadable part {part}: {exc}")
            continue
        meta = json.loads((part.parent / "_meta.json").read_text())
        for row in table.select(meta["key_columns"]).to_pylist():
            k = (str(part.parent), tuple(row.values()))
            if k in keys:
                problems.append(f"key {k[1]} twice in {part.parent.name} ({keys[k]} and {part.name})")
            keys[k] = part.name
    return problems


def temporaries(*folders: Path) -> list[Path]:
    return [p for f in folders if f.exists() for p in f.rglob(".*") if p.name.endswith((".tmp", ".old"))]


def snapshot(cache: Path, run_dir: Path) -> dict:
    """What an equal run must reproduce: each table's rows (by fingerprint folder, volatile columns
    left out), each feature's array hash by key, and the evaluation's numbers."""
    out: dict = {}
    for folder in sorted({p.parent for p in parts(cache)}):
        meta = json.loads((folder / "_meta.json").read_text())
        if meta["stage"] == "metrics":  # keyed by the run folder's path: compared as metrics.json below
            continue
        rows = []
        for part in sorted(folder.glob("part-*.parquet")):
            rows += pq.read_table(part).to_pylist()
        if meta["stage"] == "features_index":
            for r in rows:
                if r["shard"] is not None:
                    arr = np.load(folder / "shards" / r["shard"], mmap_mode="r")[r["offset"]]
                    r["array_sha"] = hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()[:16]
        if meta["stage"] == "manifest":  # a restored file is indexed again: compare the latest row per key
            latest = {}
            for r in sorted(rows, key=lambda r: r["created_at"]):
                latest[(r["subset"], r["split"], r["uid"], r["frame"])] = r
            rows = list(latest.values())
        clean = [{k: v for k, v in r.items() if k not in VOLATILE} for r in rows]
        out[f"{meta['stage']}/{meta['fingerprint']}"] = sorted(json.dumps(r, sort_keys=True, default=str) for r in clean)
    metrics = json.loads((run_dir / "teso" / "eval" / "metrics.json").read_text())
    out["eval"] = json.dumps({k: metrics.get(k) for k in ("conditions", "cue_recognition")}, sort_keys=True)
    return out


def differences(a: dict, b: dict, history: str) -> list[str]:
    """What the campaign lost or computed differently. Rows the campaign holds beyond the undisturbed
    run's are allowed only as history of the replaced content (they carry its hash `history`)."""
    diffs = [f"{k}: only in the {'undisturbed' if k in a else 'campaign'} run" for k in sorted(set(a) ^ set(b))]
    for k in sorted(set(a) & set(b)):
        if isinstance(a[k], str):
            diffs += [f"{k}: the numbers differ"] if a[k] != b[k] else []
            continue
        lost = set(a[k]) - set(b[k])
        extra = {r for r in set(b[k]) - set(a[k]) if history not in r}
        diffs += [f"{k}: {len(lost)} rows lost or changed"] if lost else []
        diffs += [f"{k}: {len(extra)} rows not in the undisturbed run"] if extra else []
    return diffs


# -- the campaign -----------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills-per-stage", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=None, help="working folder (default: a new temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the working folder")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    work = args.work or Path(tempfile.mkdtemp(prefix="teso-chaos-"))
    data = work / "data"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PREFECT_HOME": str(work / "prefect"),
           "NLTK_DATA": str(REPO / ".venv" / "nltk_data")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # too small for the V3 k-shot splits
        generate(data, SynthConfig(seed=7, size=48, videos=VIDEOS, workers=1), progress=False)

    def overrides(name: str) -> list[str]:
        return [f"dataset.root={data}", f"cache.root={work / name / 'cache'}", f"train.out_dir={work / name / 'runs'}",
                f"foundation.out={work / 'foundation'}", f"train.model.foundation={work / 'foundation'}",
                "train.recipe.epochs=3", "run.progress=false"]

    log: list[tuple[str, str, str]] = []  # (fault, where, outcome)
    failures: list[str] = []

    def record(fault: str, where: str, problems: list[str]) -> None:
        outcome = "ok" if not problems else "; ".join(problems[:3])
        log.append((fault, where, outcome))
        failures.extend(problems)
        print(f"{fault:<28} {where:<34} {outcome}", flush=True)

    # 1. the undisturbed run, timing each stage
    print(f"chaos: working in {work}", flush=True)
    durations = {}
    ov_a = overrides("a")
    for stage in ("index", *STAGES):
        t0 = time.perf_counter()
        if finish([teso(command(stage, ov_a), env)]) != [0]:
            print(f"chaos: the undisturbed {stage} failed", file=sys.stderr)
            return 1
        durations[stage] = time.perf_counter() - t0
    t0 = time.perf_counter()
    finish([teso(command("index", ov_a), env)])  # nothing to do: the start-up every command pays
    startup = time.perf_counter() - t0
    print("undisturbed: " + ", ".join(f"{s} {d:.0f} s" for s, d in durations.items()) + f"; start-up {startup:.0f} s", flush=True)
    reference = snapshot(work / "a" / "cache", work / "a" / "runs")

    # 2. the campaign
    ov_b = overrides("b")
    cache_b, runs_b = work / "b" / "cache", work / "b" / "runs"
    finish([teso(command("index", ov_b), env)])
    for stage in STAGES:
        for k in range(args.kills_per_stage):
            # a point inside the stage's own work, after the command's start-up, and early in it
            # (at most 18%), so that what a resumed stage has left still outlasts the next kill
            at = startup + rng.uniform(0.05, 0.18) * max(durations[stage] - startup, 1.0)
            if stage == "eval":  # evaluation is one piece and reuses finished results: start it afresh
                shutil.rmtree(runs_b / "teso" / "eval", ignore_errors=True)
            p = teso(command(stage, ov_b), env)
            problems = []
            try:
                p.wait(timeout=at)
                where = f"finished before {at:.1f} s"
                problems += [f"exit {p.returncode}: {p.stderr.read()[-300:]}"] if p.returncode else []
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
                where = f"killed at {at:.1f} s"
            record(f"SIGKILL {stage} #{k + 1}", where, problems + integrity(cache_b))
        codes = finish([teso(command(stage, ov_b), env), teso(command(stage, ov_b), env)])
        problems = [f"exit {c}" for c in codes if c] + integrity(cache_b)
        problems += [f"temporary left: {t}" for t in temporaries(cache_b, runs_b)]
        record(f"2 concurrent {stage}", "to completion", problems)

    cues_parts = sorted(cache_b.glob("*/cues/*/part-*.parquet"))
    victim = cues_parts[len(cues_parts) // 2]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    codes = finish([teso(["refresh", "--config", "configs/tiny.yaml", *ov_b], env)])
    quarantined = (victim.parent / "quarantine" / victim.name).exists()
    record("truncated cues part", victim.name, [f"exit {c}" for c in codes if c] + ([] if quarantined else ["not quarantined"])
           + integrity(cache_b))

    videos = sorted((data / "v1s").iterdir())
    audio, other = videos[0] / "audio.wav", videos[1] / "audio.wav"
    original = audio.read_bytes()
    audio.write_bytes(other.read_bytes())
    replaced_sha = hashlib.sha256(other.read_bytes()).hexdigest()[:16]  # the manifest's audio_sha of it
    codes = finish([teso(["refresh", "--config", "configs/tiny.yaml", *ov_b], env)])
    record("replaced a soundtrack", videos[0].name, [f"exit {c}" for c in codes if c] + integrity(cache_b))
    audio.write_bytes(original)
    codes = finish([teso(["refresh", "--config", "configs/tiny.yaml", *ov_b], env),
                    teso(command("eval", ov_b), env)])
    record("restored it", videos[0].name, [f"exit {c}" for c in codes if c] + integrity(cache_b))

    # 3. the end state equals the undisturbed run's
    got = snapshot(cache_b, runs_b)
    diffs = differences(reference, got, replaced_sha)
    record("end state vs undisturbed", f"{len(reference)} tables and the eval", diffs)

    kills = sum(1 for fault, where, _ in log if fault.startswith("SIGKILL") and where.startswith("killed"))
    if kills < 20:
        print(f"chaos: only {kills} SIGKILLs landed mid-run (20 wanted); raise --kills-per-stage", file=sys.stderr)
    print(f"\n{len(log)} faults, {kills} of them SIGKILLs that landed mid-run; {len(failures)} problems")
    print("| fault | where | outcome |\n|---|---|---|")
    for row in log:
        print("| " + " | ".join(row) + " |")
    if not args.keep and not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
