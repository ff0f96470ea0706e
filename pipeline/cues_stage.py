"""Cues stage: which described objects are sounding, per frame, into the `cues` cache table.

Reads the captions of the current captions config. Backends: `hf` / `vllm` chat LLMs prompted
with a template from `prompts/` (few-shot chain of thought by default) and parsed by
pipeline.cue_parser; or `nouns`, the paper's noun-parser baseline (TeSO-n) that needs no LLM.
An answer that cannot be parsed is kept (raw_response) with status='error'.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pyarrow as pa

from pipeline.cache_store import CacheTable
from pipeline.captions_stage import FRAME_KEYS, captions_table, latest_captions
from pipeline.config import Config
from pipeline.cue_parser import parse_cues, parse_structured
from pipeline.model_identity import model_identity
from pipeline.prompts import load_template

STAGE = "cues"
STAGE_VERSION = 1

CUES_SCHEMA = pa.schema(
    [
        ("dataset", pa.string()),
        ("subset", pa.string()),
        ("uid", pa.string()),
        ("frame", pa.int32()),
        ("caption_sha", pa.string()),  # sha256 of the caption text the cues were derived from
        ("cues", pa.list_(pa.string())),
        ("n_cues", pa.int32()),
        ("raw_response", pa.string()),
        ("template", pa.string()),
        ("template_sha", pa.string()),
        ("model", pa.string()),
        ("gen_params", pa.string()),
        ("n_tokens", pa.int32()),
        ("seconds", pa.float32()),
        ("status", pa.string()),
        ("error", pa.string()),
    ]
)


def _noun_parser_sha() -> str:
    """The noun baseline's 'template' is its code: changing the parser recomputes its cues."""
    src = (Path(__file__).parent / "noun_cues.py").read_bytes()
    return hashlib.sha256(src).hexdigest()


def _template_id(cfg: Config) -> tuple[str, str]:
    if cfg.cues.backend == "nouns":
        return "noun_parser", _noun_parser_sha()
    tpl = load_template(cfg.cues.template)
    return tpl.name, tpl.sha256


def _gen_params(cfg: Config) -> dict:
    c = cfg.cues
    params: dict = {"max_cues": c.max_cues}
    if c.backend != "nouns":
        params |= {"max_new_tokens": c.max_new_tokens, "do_sample": False, "dtype": c.dtype, "structured": c.structured}
    if c.backend == "vllm":
        params["vllm"] = c.vllm.model_dump()
    return params


def cues_table(cfg: Config) -> CacheTable:
    c = cfg.cues
    name, sha = _template_id(cfg)
    inputs = {
        "stage_version": STAGE_VERSION,
        "backend": c.backend,
        "model": model_identity(c.model) if c.backend != "nouns" else "nltk-wordnet",
        "template": name,
        "template_sha": sha,
        "gen_params": _gen_params(cfg),
        "captions_fingerprint": captions_table(cfg).fingerprint,
    }
    return CacheTable(cfg.cache.root, cfg.dataset.name, STAGE, inputs, CUES_SCHEMA, FRAME_KEYS, cfg.cache.lock_timeout_s)


def caption_rows(cfg: Config) -> pa.Table:
    """The keys to reason about: every ok caption of the current captions table."""
    caps = latest_captions(cfg).select([*FRAME_KEYS, "caption"])
    return caps.sort_by([(k, "ascending") for k in FRAME_KEYS])


def make_reasoner(cfg: Config):
    c = cfg.cues
    if c.backend == "nouns":
        from pipeline.noun_cues import ensure_wordnet

        ensure_wordnet()
        return None
    from pipeline.reasoner import build_reasoner

    common = dict(model=c.model, dtype=c.dtype, max_new_tokens=c.max_new_tokens)
    if c.backend == "hf":
        return build_reasoner("hf", device=c.device, batch_size=c.batch_size, **common)
    return build_reasoner("vllm", **c.vllm.engine_kwargs(), structured=c.structured, **common)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cue_batch(cfg: Config, reasoner, batch: pa.Table) -> pa.Table:
    c = cfg.cues
    keys = batch.select(list(FRAME_KEYS)).to_pylist()
    captions = batch["caption"].to_pylist()
    name, sha = _template_id(cfg)
    t0 = time.perf_counter()
    out: list[dict] = []
    if c.backend == "nouns":
        from pipeline.noun_cues import noun_cues

        for caption in captions:
            try:
                out.append({"cues": noun_cues(caption, max_cues=c.max_cues), "raw": None, "n_tokens": None, "status": "ok", "error": None})
            except Exception as exc:  # one odd caption must not stop the batch
                out.append({"cues": None, "raw": None, "n_tokens": None, "status": "error", "error": f"{type(exc).__name__}: {exc}"})
    else:
        template = load_template(c.template)
        try:
            results = reasoner.reason(template, captions)
        except Exception as exc:
            results = None
            out = [{"cues": None, "raw": None, "n_tokens": None, "status": "error", "error": f"{type(exc).__name__}: {exc}"}] * len(keys)
        for res in results or []:
            if res.status != "ok":
                out.append({"cues": None, "raw": res.raw_text, "n_tokens": res.n_tokens, "status": "error", "error": res.error})
                continue
            parsed = parse_structured(res.raw_text, max_cues=c.max_cues) if c.structured else parse_cues(res.raw_text, max_cues=c.max_cues)
            out.append(
                {
                    "cues": parsed.cues if parsed.status == "ok" else None,
                    "raw": res.raw_text,
                    "n_tokens": res.n_tokens,
                    "status": parsed.status,
                    "error": parsed.error,
                }
            )
    per_item = (time.perf_counter() - t0) / max(1, len(keys))
    model = "nltk-wordnet" if c.backend == "nouns" else c.model
    gen = json.dumps(_gen_params(cfg), sort_keys=True)
    rows = [
        {
            **key,
            "caption_sha": _sha(caption),
            "cues": o["cues"],
            "n_cues": len(o["cues"]) if o["cues"] is not None else None,
            "raw_response": o["raw"],
            "template": name,
            "template_sha": sha,
            "model": model,
            "gen_params": gen,
            "n_tokens": o["n_tokens"],
            "seconds": per_item,
            "status": o["status"],
            "error": o["error"],
        }
        for key, caption, o in zip(keys, captions, out)
    ]
    return pa.Table.from_pylist(rows, schema=CUES_SCHEMA)
