"""Features stages: per-second audio features (one store per audio condition) and per-frame
text-cue embeddings, into the feature store (pipeline.store.feature_store).

Audio: every ok manifest video, for each configured condition (normal, mute, white noise at
10/40 dB, ...), through the same encoder (loaded once for all conditions). Each condition is its
own store (see lineage.audio_store), so changing or adding one condition recomputes only that one.
Text: the cue list of every frame of the current cues table, as "This is a {cue}." sentences,
padded or truncated to N_T slots with a validity mask. Each distinct cue string is embedded
once per run (a cache shared by all batches of a shard).
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.config import Config
from pipeline.data.audio_io import load_audio
from pipeline.features.audio_conditions import apply_condition
from pipeline.features.backends import AUDIO_ENCODERS, TEXT_ENCODERS
from pipeline.features.cue_embedding import CachedSentenceEncoder, embed_cues
from pipeline.stages import lineage, workers
from pipeline.stages.base import ShardedStage, ShardJob

CUE_FRAME_SCHEMA = pa.schema(lineage.TEXT_KEY_FIELDS + [("cues", pa.list_(pa.string())), ("status", pa.string()), ("error", pa.string())])


# -- audio ------------------------------------------------------------------------------------
def audio_videos(cfg: Config) -> pa.Table:
    """One row per ok manifest video: keys, input_sha (the audio file's content hash: a replaced
    soundtrack is encoded again), audio_path, seconds (= frames of the video, 1 fps)."""
    manifest = lineage.load_manifest(cfg)
    grouped = manifest.group_by(["dataset", "subset", "uid", "audio_sha", "audio_path"]).aggregate([("frame", "max")])
    seconds = pc.add(grouped["frame_max"], 1).cast(pa.int32())
    rows = grouped.drop_columns(["frame_max"]).append_column("seconds", seconds)
    rows = rows.rename_columns(["dataset", "subset", "uid", "input_sha", "audio_path", "seconds"])
    return rows.sort_by([("subset", "ascending"), ("uid", "ascending")])


def audio_batch(cfg: Config, condition: str, encoder, batch: pa.Table) -> tuple[list[dict], list]:
    """Load, condition and encode one batch of videos. A clip that cannot be read or encoded
    becomes an error row; the rest of the batch is still encoded."""
    cond = cfg.features.audio.condition(condition)
    rows = batch.to_pylist()
    weights = AUDIO_ENCODERS.get(cfg.features.audio.encoder).weights_id(cfg)
    base = {"kind": "audio", "variant": cond.name, "encoder": encoder.name, "weights": weights}
    waves: dict[int, np.ndarray] = {}
    errors: dict[int, str] = {}
    for i, row in enumerate(rows):
        try:
            wave = load_audio(row["audio_path"], 16000)
            waves[i] = apply_condition(wave, cond, key=f"{row['dataset']}/{row['subset']}/{row['uid']}")
        except Exception as exc:  # unreadable or odd audio: recorded on the row, the batch goes on
            errors[i] = f"{type(exc).__name__}: {exc}"
    arrays: dict[int, np.ndarray] = {}
    todo = list(waves)
    try:
        out = encoder.encode([waves[i] for i in todo], [rows[i]["seconds"] for i in todo]) if todo else []
        arrays.update(zip(todo, out))
    except ValueError:
        for i in todo:  # isolate the clip(s) the encoder rejects
            try:
                arrays[i] = encoder.encode([waves[i]], [rows[i]["seconds"]])[0]
            except ValueError as exc:
                errors[i] = str(exc)
    keys = [{k: row[k] for k, _ in lineage.AUDIO_KEY_FIELDS} for row in rows]
    out_rows = [{**key, **base, "error": errors.get(i)} for i, key in enumerate(keys)]
    return out_rows, [arrays.get(i) for i in range(len(rows))]


def _audio_job(cfg: Config, condition: str) -> ShardJob:
    store = lineage.audio_store(cfg, condition)
    backend = AUDIO_ENCODERS.get(cfg.features.audio.encoder)
    # one encoder for every condition: the key leaves the condition out
    key = f"audio:{backend.name}:{backend.weights_id(cfg)}:{cfg.features.device}"

    def process(encoder, batch: pa.Table) -> int:
        rows, arrays = audio_batch(cfg, condition, encoder, batch)
        store.write(rows, arrays)
        return sum(a is None for a in arrays)

    return ShardJob(
        table=store.table,
        make_worker=lambda: workers.get_worker(key, lambda: backend.build(cfg)),
        process=process,
        batch_size=cfg.features.audio.videos_per_batch,
        progress=cfg.run.progress,
        desc=f"audio {condition}",
    )


AUDIO = ShardedStage(
    name="audio_features",
    reads=("manifest",),
    table=lambda cfg, condition: lineage.audio_store(cfg, condition).table,
    candidates=audio_videos,
    job=_audio_job,
    shards=lambda cfg: cfg.run.workers,
    variants=lambda cfg: [c.name for c in cfg.features.audio.conditions],
)


# -- text -------------------------------------------------------------------------------------
def cue_frames(cfg: Config) -> pa.Table:
    """Every frame of the current cues: keys, caption_sha, cues, status, error."""
    cues = lineage.current_cues(cfg, CUE_FRAME_SCHEMA.names)
    return cues.sort_by([(k, "ascending") for k, _ in lineage.FRAME_KEY_FIELDS])


def text_batch(cfg: Config, encoder: CachedSentenceEncoder, batch: pa.Table) -> tuple[list[dict], list]:
    t = cfg.features.text
    rows = batch.to_pylist()
    ok = [i for i, r in enumerate(rows) if r["status"] == "ok" and r["cues"] is not None]
    arrays: dict[int, np.ndarray] = {}
    valid: dict[int, list[bool]] = {}
    if ok:
        emb, mask = embed_cues(encoder, [rows[i]["cues"] for i in ok], n_t=t.n_t, template=t.template)
        for j, i in enumerate(ok):
            arrays[i], valid[i] = emb[j], mask[j].tolist()
    base = {"kind": "text", "variant": t.template, "encoder": t.encoder, "weights": str(t.path or "bundled-default")}
    out_rows = []
    for i, r in enumerate(rows):
        key = {k: r[k] for k, _ in lineage.TEXT_KEY_FIELDS}
        error = None if i in arrays else f"no cues for this frame: {r['error'] or 'cue status ' + str(r['status'])}"
        out_rows.append({**key, **base, "valid": valid.get(i), "error": error})
    return out_rows, [arrays.get(i) for i in range(len(rows))]


def _text_job(cfg: Config, variant: None) -> ShardJob:
    store = lineage.text_store(cfg)
    backend = TEXT_ENCODERS.get(cfg.features.text.encoder)

    def process(encoder, batch: pa.Table) -> int:
        rows, arrays = text_batch(cfg, encoder, batch)
        store.write(rows, arrays)
        return sum(a is None for a in arrays)

    return ShardJob(
        table=store.table,
        make_worker=lambda: workers.get_worker(f"text:{store.table.fingerprint}", lambda: CachedSentenceEncoder(backend.build(cfg))),
        process=process,
        batch_size=cfg.features.text.frames_per_batch,
        progress=cfg.run.progress,
        desc="text cues",
    )


TEXT = ShardedStage(
    name="text_features",
    reads=("cues",),
    table=lambda cfg, variant: lineage.text_store(cfg).table,
    candidates=cue_frames,
    job=_text_job,
    shards=lambda cfg: 1,
)
