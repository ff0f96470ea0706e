"""The lineage of the caches: every table a stage writes, its schema and keys, how its identity
(fingerprint) follows from the config, and the reads downstream stages make of upstream tables.

    dataset folder -> manifest -> captions -> cues -> text features --+
                         |                                            +-> train -> evaluate (metrics)
                         +--------------------------> audio features -+      (one store per audio condition)

A table's fingerprint hashes everything that determines its rows: its stage version, the backend's
identity (model, prompt or template hash, generation parameters) and the fingerprints of the tables
its rows are computed from, so a change anywhere upstream gives every table below it a new folder.

Rows are also tied to the content they were computed from, by a key column: a caption to its
frame file's bytes (`input_sha` = the manifest's `frame_sha`), cues and text features to the
caption text (`caption_sha`), audio features to the audio file's bytes (`input_sha` = the
manifest's `audio_sha`). A replaced frame or soundtrack therefore has no row under its new hash
and is recomputed, and only it; the rows of the old content stay as history, and every read
here selects the rows of the content the dataset holds now. Stages open tables here and never
import one another.
"""
from __future__ import annotations

import hashlib
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.common.identity import file_sha256
from pipeline.config import Config
from pipeline.data.avsbench import MANIFEST_SCHEMA
from pipeline.data.signatures import SIG_COLUMN, VIDEO_KEYS, ManifestStale, folder_state
from pipeline.features.audio_conditions import AudioCondition
from pipeline.features.backends import AUDIO_ENCODERS, FEATURES_VERSION, TEXT_ENCODERS
from pipeline.store.cache_table import CacheTable
from pipeline.store.feature_store import FeatureStore
from pipeline.text.backends import CAPTIONERS, REASONERS

# Stage versions: bump one when that stage's output for the same inputs changes.
MANIFEST_VERSION = 3  # 2: per-video signatures; 3: content hashes of frames and audio
CAPTIONS_VERSION = 2  # 2: keyed by the frame's content hash
CUES_VERSION = 2  # 2: keyed by the caption's hash
FEATURES_STAGE_VERSION = 2  # 2: keyed by the audio's content hash / the caption's hash
METRICS_VERSION = 2

FRAME_KEYS = ("dataset", "subset", "uid", "frame")
VIDEO_KEY_FIELDS = [("dataset", pa.string()), ("subset", pa.string()), ("uid", pa.string())]
FRAME_KEY_FIELDS = VIDEO_KEY_FIELDS + [("frame", pa.int32())]
INPUT_SHA = ("input_sha", pa.string())  # the content hash a row was computed from (see above)
CAPTION_SHA = ("caption_sha", pa.string())  # sha256 (16 hex) of the caption text
CAPTION_KEYS = (*FRAME_KEYS, "input_sha")
CUE_KEYS = (*FRAME_KEYS, "caption_sha")
AUDIO_KEY_FIELDS = VIDEO_KEY_FIELDS + [INPUT_SHA]
TEXT_KEY_FIELDS = FRAME_KEY_FIELDS + [CAPTION_SHA]

MANIFEST_TABLE_SCHEMA = pa.schema(list(MANIFEST_SCHEMA) + [pa.field(SIG_COLUMN, pa.string())])

CAPTIONS_SCHEMA = pa.schema(
    FRAME_KEY_FIELDS
    + [
        INPUT_SHA,  # the frame file's content hash (manifest frame_sha)
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

CUES_SCHEMA = pa.schema(
    FRAME_KEY_FIELDS
    + [
        CAPTION_SHA,  # of the caption text the cues were derived from
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

METRICS_SCHEMA = pa.schema(
    [
        ("dataset", pa.string()),
        ("run", pa.string()),  # train.out_dir name
        ("checkpoint", pa.string()),
        ("split", pa.string()),
        ("condition", pa.string()),  # audio condition, or "-" for condition-free metrics
        ("metric", pa.string()),  # miou, fscore, miou_drop, rec1_ap, miou_class/<name>, ...
        ("value", pa.float64()),
        ("frames", pa.int64()),
        ("threshold", pa.float64()),
        ("evaluation", pa.string()),  # the evaluation's fingerprint: weights + settings + features evaluated
    ]
)
METRICS_KEYS = ("dataset", "run", "checkpoint", "evaluation", "split", "condition", "metric")


def _table(cfg: Config, stage: str, inputs: dict, schema: pa.Schema, keys) -> CacheTable:
    return CacheTable(cfg.cache.root, cfg.dataset.name, stage, inputs, schema, keys, cfg.cache.lock_timeout_s)


# -- manifest ---------------------------------------------------------------------------------
def manifest_table(cfg: Config) -> CacheTable:
    """Fingerprinted by the reader's settings, not the files: each video's rows carry its signature."""
    ds = cfg.dataset
    inputs = {"stage_version": MANIFEST_VERSION, "root": str(ds.root.resolve()), "subsets": ds.subsets,
              "splits": ds.splits, "v3": ds.v3, "verify": ds.verify}
    keys = ("dataset", "subset", "split", "uid", "frame", SIG_COLUMN)
    return _table(cfg, "manifest", inputs, MANIFEST_TABLE_SCHEMA, keys)


def current_rows(table: CacheTable, current: pa.Table) -> pa.Table:
    """Stored rows whose (video keys, signature) are in `current`, in manifest order."""
    stored = table.read()
    keys = [*VIDEO_KEYS, SIG_COLUMN]
    if stored.num_rows == 0 or current.num_rows == 0:
        return stored.slice(0, 0)
    # join and sort the keys alone, then take the rows once: joining and sorting the whole table
    # copied every column twice
    order = ("subset", "split", "uid", "frame")
    marked = stored.select([*keys, "frame"]).append_column("__row", pa.array(np.arange(stored.num_rows)))
    hits = marked.join(current.cast(stored.select(keys).schema), keys=keys, join_type="inner")
    hits = hits.sort_by([(c, "ascending") for c in order])
    return stored.take(hits["__row"]).select(table.schema.names)


# The manifest one run works from. A flow that has just indexed pins the current rows
# (`pinned_manifest`), and every read below it sees that snapshot: reading the manifest otherwise
# signs every video of the folder again (a stat of every file), and a refresh read it five times
# (bench/bench_scale.py: 5 of the 5.4 s planning a no-op refresh of 8,678 frames).
_PINNED: ContextVar[tuple[str, pa.Table] | None] = ContextVar("pinned_manifest", default=None)


@contextmanager
def pinned_manifest(cfg: Config, rows: pa.Table) -> Iterator[None]:
    """Within the block, `load_manifest(cfg)` returns `rows` (the current manifest, all statuses:
    `run_manifest(cfg).rows`) without reading the folder again."""
    token = _PINNED.set((str(manifest_table(cfg).path), rows))
    try:
        yield
    finally:
        _PINNED.reset(token)


def pinned_rows(cfg: Config) -> pa.Table | None:
    """The pinned current manifest of cfg's dataset and cache, or None."""
    pinned = _PINNED.get()
    return pinned[1] if pinned is not None and pinned[0] == str(manifest_table(cfg).path) else None


def load_manifest(cfg: Config, ok_only: bool = True) -> pa.Table:
    """The current manifest: the stored rows of the videos the folder holds now (a removed video
    is not in it); the pinned snapshot inside `pinned_manifest`. Reads only; raises ManifestStale
    when a video is new or changed since the last indexing (`teso index`, or the manifest stage
    that every flow runs first)."""
    rows = pinned_rows(cfg)
    if rows is None:
        rows = _read_manifest(cfg)
    if ok_only:
        rows = rows.filter(pc.equal(rows["status"], "ok"))
    return rows


def _read_manifest(cfg: Config) -> pa.Table:
    ds = cfg.dataset
    table = manifest_table(cfg)
    current = folder_state(ds.root, ds.name, ds.subsets, ds.splits, ds.v3).current()
    rows = current_rows(table, current)
    indexed = rows.select([*VIDEO_KEYS, SIG_COLUMN]).group_by([*VIDEO_KEYS, SIG_COLUMN]).aggregate([]).num_rows
    if indexed < current.num_rows:
        raise ManifestStale(
            f"{current.num_rows - indexed} of {current.num_rows} videos in {ds.root} are new or changed since they were "
            f"indexed into {table.path}; run `teso index` (or `teso refresh`) first"
        )
    return rows


# -- text cues --------------------------------------------------------------------------------
def _current(rows: pa.Table, current: pa.Table, keys: list[str]) -> pa.Table:
    """The `rows` whose `keys` are in `current` (an inner join), with their own columns only."""
    if rows.num_rows == 0 or current.num_rows == 0:
        return rows.slice(0, 0)
    wanted = current.select(keys).cast(rows.select(keys).schema).group_by(keys).aggregate([])
    # join on the keys alone and take the matches: Arrow cannot carry list columns through a join
    marked = rows.select(keys).append_column("__row", pa.array(range(rows.num_rows), pa.int64()))
    hits = marked.join(wanted, keys=keys, join_type="inner")["__row"].to_pylist()
    return rows.take(pa.array(sorted(hits), pa.int64()))


def text_sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def captions_table(cfg: Config) -> CacheTable:
    inputs = {"stage_version": CAPTIONS_VERSION, **CAPTIONERS.get(cfg.captions.backend).identity(cfg)}
    return _table(cfg, "captions", inputs, CAPTIONS_SCHEMA, CAPTION_KEYS)


def current_frames(cfg: Config) -> pa.Table:
    """(frame keys, frame_path, input_sha = frame_sha) of every ok frame of the current manifest."""
    keys = list(FRAME_KEYS)
    rows = load_manifest(cfg).select([*keys, "frame_path", "frame_sha"]).group_by([*keys, "frame_path", "frame_sha"]).aggregate([])
    return rows.rename_columns([*keys, "frame_path", "input_sha"]).sort_by([(k, "ascending") for k in keys])


def ok_captions(cfg: Config) -> pa.Table:
    """The ok captions of the current captions config for the frames as they are now, each with
    its `caption_sha`."""
    table = captions_table(cfg).read()
    table = _current(table.filter(pc.equal(table["status"], "ok")), current_frames(cfg), list(CAPTION_KEYS))
    return table.append_column("caption_sha", pa.array([text_sha(c) for c in table["caption"].to_pylist()], pa.string()))


def cues_table(cfg: Config) -> CacheTable:
    inputs = {"stage_version": CUES_VERSION, **REASONERS.get(cfg.cues.backend).identity(cfg),
              "captions_fingerprint": captions_table(cfg).fingerprint}
    return _table(cfg, "cues", inputs, CUES_SCHEMA, CUE_KEYS)


def current_cues(cfg: Config, columns: list[str] | None = None) -> pa.Table:
    """The cue rows (any status) of the current captions: one per frame with an ok caption."""
    rows = cues_table(cfg).read()
    rows = _current(rows, ok_captions(cfg), list(CUE_KEYS))
    return rows.select(columns) if columns else rows


def cue_lists(cfg: Config) -> dict[tuple, list[str]]:
    """{(subset, uid, frame): the reasoner's cues in its order} for every ok frame of the current cues."""
    rows = current_cues(cfg, ["subset", "uid", "frame", "cues", "status"]).to_pylist()
    return {(r["subset"], r["uid"], r["frame"]): (r["cues"] or []) for r in rows if r["status"] == "ok"}


def text_keys(cfg: Config) -> dict[tuple, tuple]:
    """{(dataset, subset, uid, frame): its key in the text store} for the frames with current cues."""
    rows = current_cues(cfg, [*FRAME_KEYS, "caption_sha"]).to_pylist()
    return {tuple(r[k] for k in FRAME_KEYS): tuple(r[k] for k in CUE_KEYS) for r in rows}


# -- features ---------------------------------------------------------------------------------
def audio_store(cfg: Config, condition: AudioCondition | str) -> FeatureStore:
    """One store per audio condition, fingerprinted by the encoder's identity and that condition's
    exact definition, so changing or adding one condition recomputes only that one."""
    a = cfg.features.audio
    spec = a.condition(condition) if isinstance(condition, str) else condition
    inputs = {
        "kind": "audio",
        "stage_version": FEATURES_STAGE_VERSION,
        "features_version": FEATURES_VERSION,
        "encoder": a.encoder,
        "weights": AUDIO_ENCODERS.get(a.encoder).weights_id(cfg),
        "postprocess": a.postprocess,
        "pca_params": _pca_id(cfg),
        "condition": spec.model_dump(),
    }
    return FeatureStore(cfg.cache.root, cfg.dataset.name, inputs, AUDIO_KEY_FIELDS, cfg.cache.lock_timeout_s)


def _pca_id(cfg: Config) -> str | None:
    a = cfg.features.audio
    return file_sha256(a.pca_params) if a.postprocess and a.pca_params and Path(a.pca_params).is_file() else None


def text_store(cfg: Config) -> FeatureStore:
    t = cfg.features.text
    inputs = {
        "kind": "text",
        "stage_version": FEATURES_STAGE_VERSION,
        "encoder": t.encoder,
        **TEXT_ENCODERS.get(t.encoder).identity(cfg),
        "template": t.template,
        "n_t": t.n_t,
        "cues_fingerprint": cues_table(cfg).fingerprint,
    }
    return FeatureStore(cfg.cache.root, cfg.dataset.name, inputs, TEXT_KEY_FIELDS, cfg.cache.lock_timeout_s)


@dataclass
class Stores:
    """The feature stores a model reads: audio of one condition, and the text cues (None for a
    model that reads no text: GAVS)."""

    audio: FeatureStore
    text: FeatureStore | None

    def audio_lookup(self, key):
        return self.audio.get(key)

    def text_lookup(self, key):
        if self.text is None:  # no cues: one padded slot, which such a model never reads
            return np.zeros((1, 1), np.float32), np.zeros(1, bool)
        return self.text.get(key), self.text.get_valid(key)


def reads_text(cfg: Config) -> bool:
    return cfg.train.model.get("architecture", "teso") == "teso"


def open_stores(cfg: Config, condition: str | None = None) -> Stores:
    """The stores of `condition` (default: train.audio_condition); names are checked at config load.
    A run that reads no text (train.model.architecture: gavs) gets no text store, so it needs no
    captions, cues or text features."""
    return Stores(audio_store(cfg, condition or cfg.train.audio_condition), text_store(cfg) if reads_text(cfg) else None)


# -- metrics ----------------------------------------------------------------------------------
def metrics_table(cfg: Config) -> CacheTable:
    """Keyed by the evaluation's fingerprint: retrained weights or other settings add rows, never lose them."""
    inputs = {"run": str(Path(cfg.train.out_dir).resolve()), "version": METRICS_VERSION}
    return _table(cfg, "metrics", inputs, METRICS_SCHEMA, METRICS_KEYS)
