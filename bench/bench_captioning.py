"""Captioning benchmarks on the tiny offline LLaVA (the same hf backend the real model uses):

(a) batch 8 vs one image at a time, time per frame (target: batched >= 4x faster);
(b) the captions flow on a small synthetic dataset: a re-run with nothing new vs the first run
    (target: under 5% of the first run's time; the re-run loads no model).

    .venv/bin/python bench/bench_captioning.py [--quick]
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

from PIL import Image

from pipeline.captioner import HFLlavaCaptioner
from tests.fixtures.tiny_models import make_tiny_llava


def per_frame(captioner: HFLlavaCaptioner, images: list) -> float:
    captioner.caption(images[: captioner.batch_size])  # warm-up
    t0 = time.perf_counter()
    captioner.caption(images)
    return (time.perf_counter() - t0) / len(images)


def noop_rerun(tmp: Path, llava: str, quick: bool) -> dict:
    from flows.captions import captions_flow
    from pipeline.config import load_config
    from pipeline.synth import SynthConfig, generate

    n = 2 if quick else 6
    videos = {"v1s": {"train": n, "val": 0, "test": 0}, "v1m": {"train": 0, "val": 0, "test": 0}, "v2": {"train": n, "val": 0, "test": 0}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        generate(tmp / "data", SynthConfig(seed=0, size=64, videos=videos, workers=1), progress=False)
    cfg = load_config(None, [f"dataset.root={tmp / 'data'}", f"cache.root={tmp / 'cache'}", "run.progress=false",
                             "captions.backend=hf", f"captions.model={llava}", "captions.max_new_tokens=16", "captions.device=cpu"])
    captions_flow(cfg)  # warms Prefect's server and database so both timed runs pay the same overhead
    cfg = cfg.model_copy(update={"cache": cfg.cache.model_copy(update={"root": tmp / "cache2"})})
    t0 = time.perf_counter()
    first = captions_flow(cfg)
    t_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    again = captions_flow(cfg)
    t_again = time.perf_counter() - t0
    return {"frames": first.total, "first_s": t_first, "rerun_s": t_again, "rerun_share": t_again / t_first, "rerun_loaded_model": again.model_loaded}


def run(quick: bool = False) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-caption-") as tmp:
        llava = make_tiny_llava(Path(tmp) / "llava")
        images = [Image.new("RGB", (160, 160), (i * 7 % 255, 80, 200)) for i in range(8 if quick else 32)]
        kwargs = dict(model=llava, instruction="Describe this picture in detail", device="cpu", max_new_tokens=20)
        single = per_frame(HFLlavaCaptioner(batch_size=1, **kwargs), images)
        batched = per_frame(HFLlavaCaptioner(batch_size=8, **kwargs), images)
        return {
            "images": len(images),
            "single_s_per_frame": single,
            "batched_s_per_frame": batched,
            "speedup": single / batched,
            "noop": noop_rerun(Path(tmp), llava, quick),
        }


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2, default=str))
