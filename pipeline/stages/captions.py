"""Captions stage: one dense caption per manifest frame into the `captions` cache table.

Backends (pipeline.text.backends.CAPTIONERS): `hf` (transformers LLaVA-1.5), `vllm` (GPU),
`reference` (the dataset's own scene descriptions, for machines without captioning weights).
"""
from __future__ import annotations

import json
import time

import pyarrow as pa
from PIL import Image

from pipeline.config import Config
from pipeline.stages import lineage
from pipeline.stages.base import ShardedStage, ShardJob, table_job
from pipeline.text.backends import CAPTIONERS


def frame_keys(cfg: Config) -> pa.Table:
    """Distinct (keys, frame_path, input_sha) of the ok manifest rows: a frame whose file changed
    has a new input_sha, so it is captioned again."""
    return lineage.current_frames(cfg)


def _open_image(path: str) -> tuple[Image.Image | None, str | None]:
    try:
        with Image.open(path) as img:
            return img.convert("RGB"), None
    except (OSError, ValueError) as exc:
        return None, f"frame unreadable ({exc}): {path}"


def caption_batch(cfg: Config, captioner, batch: pa.Table) -> pa.Table:
    """Caption one batch of manifest keys; unreadable frames become error rows, not crashes."""
    backend = CAPTIONERS.get(cfg.captions.backend)
    keys = batch.select(list(lineage.CAPTION_KEYS)).to_pylist()
    paths = batch["frame_path"].to_pylist()
    t0 = time.perf_counter()
    results: list[tuple[str | None, int | None, str, str | None]] = [None] * len(keys)  # type: ignore[list-item]
    if not backend.reads_images:
        todo = list(range(len(keys)))
        images: list = [None] * len(keys)
    else:
        images, todo = [], []
        for i, path in enumerate(paths):
            img, err = _open_image(path)
            if err:
                results[i] = (None, None, "error", err)
            else:
                todo.append(i)
            images.append(img)
    if todo:
        label_keys = [{"label": keys[i]["subset"], "uid": keys[i]["uid"], "frame": keys[i]["frame"]} for i in todo]
        try:
            out = captioner.caption([images[i] for i in todo], label_keys)
            for i, res in zip(todo, out):
                results[i] = (res.text if res.status == "ok" else None, res.n_tokens, res.status, res.error)
        except Exception as exc:  # a model failure on this batch is recorded per row; the stage goes on
            for i in todo:
                results[i] = (None, None, "error", f"{type(exc).__name__}: {exc}")
    per_item = (time.perf_counter() - t0) / max(1, len(keys))
    prompt = backend.prompt(cfg)
    base = {
        "model": backend.model_name(cfg),
        "prompt_name": prompt.name if prompt else None,
        "prompt_sha": prompt.sha256 if prompt else None,
        "gen_params": json.dumps(backend.gen_params(cfg), sort_keys=True),
        "seconds": per_item,
    }
    rows = [
        {**key, **base, "caption": text, "n_tokens": n_tokens, "status": status, "error": error}
        for key, (text, n_tokens, status, error) in zip(keys, results)
    ]
    return pa.Table.from_pylist(rows, schema=lineage.CAPTIONS_SCHEMA)


def _job(cfg: Config, variant: None) -> ShardJob:
    backend = CAPTIONERS.get(cfg.captions.backend)
    return table_job(cfg, lineage.captions_table(cfg), lambda: backend.build(cfg),
                     lambda captioner, batch: caption_batch(cfg, captioner, batch), cfg.captions.batch_size)


STAGE = ShardedStage(
    name="captions",
    reads=("manifest",),
    table=lambda cfg, variant: lineage.captions_table(cfg),
    candidates=frame_keys,
    job=_job,
    shards=lambda cfg: cfg.captions.shards,
)
