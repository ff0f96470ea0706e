"""Captions stage: one dense caption per manifest frame into the `captions` cache table.

Backends (pipeline.captioner): `hf` (transformers LLaVA-1.5), `vllm` (GPU), `reference` (the
dataset's own scene descriptions, for machines without captioning weights).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from PIL import Image

from pipeline.cache_store import CacheTable
from pipeline.config import Config
from pipeline.manifest_stage import load_manifest
from pipeline.model_identity import model_identity
from pipeline.prompts import load_template
from pipeline.reference_captions import DESCRIPTIONS_FILE

STAGE = "captions"
STAGE_VERSION = 1  # bump when this stage's output for the same inputs changes
FRAME_KEYS = ("dataset", "subset", "uid", "frame")

CAPTIONS_SCHEMA = pa.schema(
    [
        ("dataset", pa.string()),
        ("subset", pa.string()),
        ("uid", pa.string()),
        ("frame", pa.int32()),
        ("caption", pa.string()),
        ("model", pa.string()),
        ("prompt_name", pa.string()),
        ("prompt_sha", pa.string()),
        ("gen_params", pa.string()),  # JSON of the generation parameters
        ("n_tokens", pa.int32()),
        ("seconds", pa.float32()),  # wall time of the batch divided by its size
        ("status", pa.string()),
        ("error", pa.string()),
    ]
)


def _gen_params(cfg: Config) -> dict:
    c = cfg.captions
    if c.backend == "reference":
        return {}
    params = {"max_new_tokens": c.max_new_tokens, "do_sample": False, "dtype": c.dtype}
    if c.backend == "vllm":
        params["vllm"] = c.vllm.model_dump()
    return params


def _model_inputs(cfg: Config) -> dict:
    c = cfg.captions
    if c.backend == "reference":
        # The file is identified by where it is, not by its content: it grows when videos are added,
        # and a frame's caption is its own line, so adding videos must not re-caption the old ones.
        # (An edited description of an existing frame is therefore not noticed; clear the table.)
        return {"descriptions": str((Path(cfg.dataset.root) / DESCRIPTIONS_FILE).resolve()), "identity": "path"}
    return model_identity(c.model)


def captions_table(cfg: Config) -> CacheTable:
    c = cfg.captions
    prompt = load_template(c.prompt) if c.backend != "reference" else None
    inputs = {
        "stage_version": STAGE_VERSION,
        "backend": c.backend,
        **_model_inputs(cfg),
        "prompt_sha": prompt.sha256 if prompt else None,
        "gen_params": _gen_params(cfg),
    }
    return CacheTable(cfg.cache.root, cfg.dataset.name, STAGE, inputs, CAPTIONS_SCHEMA, FRAME_KEYS, cfg.cache.lock_timeout_s)


def frame_keys(cfg: Config) -> pa.Table:
    """Distinct (keys, frame_path) of the ok manifest rows."""
    manifest = load_manifest(cfg)
    rows = manifest.select([*FRAME_KEYS, "frame_path"]).group_by([*FRAME_KEYS, "frame_path"]).aggregate([])
    return rows.sort_by([(k, "ascending") for k in FRAME_KEYS])


def make_captioner(cfg: Config):
    c = cfg.captions
    if c.backend == "reference":
        from pipeline.reference_captions import ReferenceCaptioner

        return ReferenceCaptioner(cfg.dataset.root)
    from pipeline.captioner import build_captioner

    instruction = load_template(c.prompt).text.strip()
    common = dict(model=c.model, dtype=c.dtype, max_new_tokens=c.max_new_tokens, instruction=instruction)
    if c.backend == "hf":
        return build_captioner("hf", device=c.device, batch_size=c.batch_size, **common)
    return build_captioner("vllm", **c.vllm.engine_kwargs(multimodal=True), **common)


def _open_image(path: str) -> tuple[Image.Image | None, str | None]:
    try:
        with Image.open(path) as img:
            return img.convert("RGB"), None
    except (OSError, ValueError) as exc:
        return None, f"frame unreadable ({exc}): {path}"


def caption_batch(cfg: Config, captioner, batch: pa.Table) -> pa.Table:
    """Caption one batch of manifest keys; unreadable frames become error rows, not crashes."""
    c = cfg.captions
    keys = batch.select(list(FRAME_KEYS)).to_pylist()
    paths = batch["frame_path"].to_pylist()
    t0 = time.perf_counter()
    results: list[tuple[str | None, int | None, str, str | None]] = [None] * len(keys)  # type: ignore[list-item]
    if c.backend == "reference":
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
    prompt = None if c.backend == "reference" else load_template(c.prompt)
    model_name = f"reference:{DESCRIPTIONS_FILE}" if c.backend == "reference" else c.model
    gen = json.dumps(_gen_params(cfg), sort_keys=True)
    rows = []
    for key, (text, n_tokens, status, error) in zip(keys, results):
        rows.append(
            {
                **key,
                "caption": text,
                "model": model_name,
                "prompt_name": prompt.name if prompt else None,
                "prompt_sha": prompt.sha256 if prompt else None,
                "gen_params": gen,
                "n_tokens": n_tokens,
                "seconds": per_item,
                "status": status,
                "error": error,
            }
        )
    return pa.Table.from_pylist(rows, schema=CAPTIONS_SCHEMA)


def latest_captions(cfg: Config) -> pa.Table:
    """The captions of the current captions config (ok rows only)."""
    table = captions_table(cfg).read()
    return table.filter(pc.equal(table["status"], "ok"))
