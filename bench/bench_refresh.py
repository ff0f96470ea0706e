"""Refresh benchmark: the whole pipeline (flows/refresh.py: manifest, captions, cues, audio
features per condition, text-cue features) on a synthetic dataset of 100 videos (quick: 30),

(a) a full refresh (empty caches),
(b) a refresh after 10% more videos were generated into the same folder (target: <= 15% of (a)),
(c) a refresh with nothing new (no-op),

in one process, with the demo's CPU backends (reference captions, noun-parser cues, log-mel audio,
bundled MiniLM text encoder). Prefect's temporary server is started and warmed with a trivial
flow before anything is timed. Models stay loaded between runs in one process (pipeline.stages.workers),
as in a long-running worker; a served deployment starts a process per run and so also pays its
model loads (noun parser ~5 s, MiniLM ~3 s here) on every run that has new work.

    .venv/bin/python bench/bench_refresh.py [--quick]
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flows import prefect_env  # noqa: E402

prefect_env.configure()


def _videos(scale: float, extra: int = 0) -> dict:
    """100 videos at scale 1 (v1s 50, v1m 20, v2 30 over train/val/test); `extra` more train videos
    spread over the subsets in the same proportions."""
    base = {"v1s": (34, 8, 8), "v1m": (10, 5, 5), "v2": (20, 5, 5)}
    share = {"v1s": 0.4, "v1m": 0.2, "v2": 0.4}
    added = {k: round(extra * s) for k, s in share.items()}
    added["v1s"] += extra - sum(added.values())
    return {k: {"train": round(tr * scale) + added[k], "val": round(va * scale), "test": round(te * scale)}
            for k, (tr, va, te) in base.items()}


def _count(videos: dict) -> tuple[int, int]:
    frames = {"v1s": 5, "v1m": 5, "v2": 10}
    n = sum(sum(s.values()) for s in videos.values())
    return n, sum(frames[k] * sum(s.values()) for k, s in videos.items())


def _computed(result: dict) -> dict:
    stages = result["stages"]
    flat = {k: v for k, v in stages.items() if k != "features"} | stages["features"]
    return {name: s["computed"] for name, s in flat.items()}


def run(quick: bool = False) -> dict:
    from prefect import flow

    from flows.refresh import refresh_flow
    from pipeline.data.synth import SynthConfig, generate

    scale = 0.3 if quick else 1.0
    first = _videos(scale)
    n0, f0 = _count(first)
    grown = _videos(scale, extra=max(1, round(n0 * 0.1)))
    n1, f1 = _count(grown)

    @flow(name="bench-warm-up")
    def warm_up() -> int:
        return 1

    with tempfile.TemporaryDirectory(prefix="bench-refresh-") as tmp:
        root, cache = Path(tmp) / "data", Path(tmp) / "cache"
        synth = lambda videos: generate(root, SynthConfig(seed=0, size=160, videos=videos, workers=1), progress=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            synth(first)
        overrides = [f"dataset.root={root}", f"cache.root={cache}", "run.progress=false",
                     "captions.batch_size=256", "cues.batch_size=256"]
        t0 = time.perf_counter()
        warm_up()
        warm_s = time.perf_counter() - t0

        def timed() -> tuple[float, dict]:
            t = time.perf_counter()
            result = refresh_flow(None, overrides)
            return time.perf_counter() - t, result

        full_s, full = timed()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            synth(grown)  # the old videos' files stay byte-identical, with their modification times
        incremental_s, incremental = timed()
        noop_s, noop = timed()

    return {
        "videos": n0, "frames": f0, "added_videos": n1 - n0, "added_frames": f1 - f0,
        "prefect_warm_up_s": warm_s,
        "full_s": full_s, "incremental_s": incremental_s, "noop_s": noop_s,
        "incremental_over_full": incremental_s / full_s, "noop_over_full": noop_s / full_s,
        "stage_seconds": {name: {"full": _stage_s(full, name), "incremental": _stage_s(incremental, name), "noop": _stage_s(noop, name)}
                          for name in _computed(full)},
        "computed": {"full": _computed(full), "incremental": _computed(incremental), "noop": _computed(noop)},
    }


def _stage_s(result: dict, name: str) -> float:
    stages = result["stages"]
    return (stages["features"][name] if name not in stages else stages[name])["seconds"]


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2, default=str))
