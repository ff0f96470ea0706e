"""Prefect flow: audio features for every audio condition, then text-cue embeddings."""
from __future__ import annotations

import pyarrow as pa
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.sharding import run_sharded
from pipeline import worker_cache
from pipeline.config import Config, save_effective_config
from pipeline.features_stage import (
    CUE_FRAME_SCHEMA,
    audio_batch,
    audio_store,
    audio_videos,
    audio_weights_id,
    cue_frames,
    make_audio_encoder,
    make_text_encoder,
    text_batch,
    text_store,
)
from pipeline.stage_runner import ShardJob, ShardResult, StageSummary


def _spec(cfg: Config, name: str):
    return next(s for s in cfg.features.audio.conditions if s.name == name)


@task(name="audio-feature-shard", retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def audio_shard(cfg: Config, shard: list[dict], condition: str) -> ShardResult:
    spec = _spec(cfg, condition)
    store = audio_store(cfg, spec)
    key = f"audio:{cfg.features.audio.encoder}:{audio_weights_id(cfg)}:{cfg.features.device}"

    def process(encoder, batch: pa.Table) -> int:
        rows, arrays = audio_batch(cfg, spec, encoder, batch)
        store.write(rows, arrays)
        return sum(a is None for a in arrays)

    job = ShardJob(
        table=store.table,
        make_worker=lambda: worker_cache.get_worker(key, lambda: make_audio_encoder(cfg)),
        process=process,
        batch_size=cfg.features.audio.videos_per_batch,
        progress=cfg.run.progress,
        desc=f"audio {condition}",
    )
    return job.run(pa.Table.from_pylist(shard))


@task(name="text-feature-shard", retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def text_shard(cfg: Config, shard: list[dict]) -> ShardResult:
    store = text_store(cfg)

    def process(encoder, batch: pa.Table) -> int:
        rows, arrays = text_batch(cfg, encoder, batch)
        store.write(rows, arrays)
        return sum(a is None for a in arrays)

    job = ShardJob(
        table=store.table,
        make_worker=lambda: worker_cache.get_worker(f"text:{store.table.fingerprint}", lambda: make_text_encoder(cfg)),
        process=process,
        batch_size=cfg.features.text.frames_per_batch,
        progress=cfg.run.progress,
        desc="text cues",
    )
    return job.run(pa.Table.from_pylist(shard, schema=CUE_FRAME_SCHEMA))


@flow(name="features", log_prints=True)
def features_flow(cfg: Config) -> list[StageSummary]:
    summaries = []
    videos = audio_videos(cfg)
    for spec in cfg.features.audio.conditions:
        store = audio_store(cfg, spec)
        save_effective_config(cfg, store.path)
        summary = run_sharded(audio_shard, cfg, store.table, videos, cfg.run.workers, spec.name)
        summary.extra["condition"] = spec.name
        summaries.append(summary)
        print(f"audio {spec.name}: {summary}")
    store = text_store(cfg)
    save_effective_config(cfg, store.path)
    summary = run_sharded(text_shard, cfg, store.table, cue_frames(cfg), 1)
    summaries.append(summary)
    print(f"text: {summary}")
    return summaries
