"""Cues stage: which described objects are sounding, per frame, into the `cues` cache table.

Reads the captions of the current captions config. Backends (pipeline.text.backends.REASONERS):
`hf` / `vllm` chat LLMs prompted with a template from `prompts/` (few-shot chain of thought by
default) and parsed by pipeline.text.cue_parser; `cot_rules`, a rule-based stand-in for their
chain of thought on CPU machines, parsed the same way; or `nouns`, the paper's noun-parser
baseline (TeSO-n) that needs no LLM. An answer that cannot be parsed is kept (raw_response) with status='error'.
"""
from __future__ import annotations

import json
import time

import pyarrow as pa

from pipeline.config import Config
from pipeline.stages import lineage
from pipeline.stages.base import ShardedStage, ShardJob, table_job
from pipeline.text.backends import REASONERS


def caption_rows(cfg: Config) -> pa.Table:
    """The keys to reason about: every ok caption of the current captions, with its caption_sha
    (a changed caption is reasoned about again)."""
    keys = list(lineage.FRAME_KEYS)
    caps = lineage.ok_captions(cfg).select([*keys, "caption_sha", "caption"])
    return caps.sort_by([(k, "ascending") for k in keys])


def cue_batch(cfg: Config, reasoner, batch: pa.Table) -> pa.Table:
    backend = REASONERS.get(cfg.cues.backend)
    keys = batch.select(list(lineage.FRAME_KEYS)).to_pylist()
    captions = batch["caption"].to_pylist()
    t0 = time.perf_counter()
    out = backend.cues(reasoner, cfg, captions)
    per_item = (time.perf_counter() - t0) / max(1, len(keys))
    name, sha = backend.template(cfg)
    base = {"template": name, "template_sha": sha, "model": backend.model_name(cfg),
            "gen_params": json.dumps(backend.gen_params(cfg), sort_keys=True), "seconds": per_item}
    rows = [
        {
            **key,
            **base,
            "caption_sha": lineage.text_sha(caption),
            "cues": o["cues"],
            "n_cues": len(o["cues"]) if o["cues"] is not None else None,
            "raw_response": o["raw"],
            "n_tokens": o["n_tokens"],
            "status": o["status"],
            "error": o["error"],
        }
        for key, caption, o in zip(keys, captions, out)
    ]
    return pa.Table.from_pylist(rows, schema=lineage.CUES_SCHEMA)


def _job(cfg: Config, variant: None) -> ShardJob:
    backend = REASONERS.get(cfg.cues.backend)
    return table_job(cfg, lineage.cues_table(cfg), lambda: backend.build(cfg),
                     lambda reasoner, batch: cue_batch(cfg, reasoner, batch), cfg.cues.batch_size)


STAGE = ShardedStage(
    name="cues",
    reads=("captions",),
    table=lambda cfg, variant: lineage.cues_table(cfg),
    candidates=caption_rows,
    job=_job,
    shards=lambda cfg: cfg.cues.shards,
)
