"""Features stage: per-second audio features (one store per audio condition) and per-frame
text-cue embeddings, into the feature store (pipeline.feature_store).

Audio: every ok manifest video, for each configured condition (normal, mute, white noise at
10/40 dB, ...), through the same encoder. Each condition is its own store, fingerprinted by the
encoder's identity and that condition's exact definition (kind, SNR, seed, mode), so changing
or adding one condition recomputes only that one.
Text: the cue list of every frame of the current cues table, as "This is a {cue}." sentences,
padded or truncated to N_T slots with a validity mask. Each distinct cue string is embedded
once per run (a cache shared by all batches of a shard).
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.audio_conditions import AudioCondition, apply_condition
from pipeline.config import AudioConditionSpec, Config
from pipeline.feature_store import FeatureStore
from pipeline.manifest_stage import load_manifest

STAGE_VERSION = 1
VIDEO_KEYS = [("dataset", pa.string()), ("subset", pa.string()), ("uid", pa.string())]
FRAME_KEYS = VIDEO_KEYS + [("frame", pa.int32())]
CUE_FRAME_SCHEMA = pa.schema(FRAME_KEYS + [("cues", pa.list_(pa.string())), ("status", pa.string()), ("error", pa.string())])


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# -- audio ------------------------------------------------------------------------------------
def audio_weights_id(cfg: Config) -> str:
    """The encoder weights' identity, known without loading the network."""
    a = cfg.features.audio
    if a.encoder == "logmel":
        return "none"
    if a.weights is not None and Path(a.weights).is_file():
        return file_sha256(Path(a.weights))
    if a.allow_random_weights:
        return f"random seed {a.seed}"
    return f"missing: {a.weights}"  # the encoder itself raises the clear error when it is built


def audio_store(cfg: Config, spec: AudioConditionSpec) -> FeatureStore:
    a = cfg.features.audio
    from pipeline.audio_features import FEATURES_VERSION

    inputs = {
        "kind": "audio",
        "stage_version": STAGE_VERSION,
        "features_version": FEATURES_VERSION,
        "encoder": a.encoder,
        "weights": audio_weights_id(cfg),
        "postprocess": a.postprocess,
        "pca_params": file_sha256(a.pca_params) if a.postprocess and a.pca_params and Path(a.pca_params).is_file() else None,
        "condition": spec.model_dump(),
    }
    return FeatureStore(cfg.cache.root, cfg.dataset.name, inputs, VIDEO_KEYS, cfg.cache.lock_timeout_s)


def audio_videos(cfg: Config) -> pa.Table:
    """One row per ok manifest video: keys, audio_path, seconds (= frames of the video, 1 fps)."""
    manifest = load_manifest(cfg)
    grouped = manifest.group_by(["dataset", "subset", "uid", "audio_path"]).aggregate([("frame", "max")])
    seconds = pc.add(grouped["frame_max"], 1).cast(pa.int32())
    rows = grouped.drop_columns(["frame_max"]).append_column("seconds", seconds)
    return rows.sort_by([("subset", "ascending"), ("uid", "ascending")])


def make_audio_encoder(cfg: Config):
    from pipeline.audio_features import build_audio_encoder

    a = cfg.features.audio
    if a.encoder == "logmel":
        return build_audio_encoder("logmel", device=cfg.features.device, batch_size=a.batch_size)
    return build_audio_encoder(
        "vggish",
        weights_path=str(a.weights) if a.weights else None,
        allow_random_weights=a.allow_random_weights,
        seed=a.seed,
        postprocess=a.postprocess,
        pca_params_path=str(a.pca_params) if a.pca_params else None,
        device=cfg.features.device,
        batch_size=a.batch_size,
    )


def _condition(spec: AudioConditionSpec) -> AudioCondition:
    return AudioCondition(spec.name, spec.kind, snr_db=spec.snr_db, seed=spec.seed, mode=spec.mode)


def audio_batch(cfg: Config, spec: AudioConditionSpec, encoder, batch: pa.Table) -> tuple[list[dict], list]:
    """Load, condition and encode one batch of videos. A clip that cannot be read or encoded
    becomes an error row; the rest of the batch is still encoded."""
    from pipeline.audio_io import load_audio

    cond = _condition(spec)
    rows = batch.to_pylist()
    base = {"kind": "audio", "variant": spec.name, "encoder": encoder.name, "weights": audio_weights_id(cfg)}
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
    keys = [{k: row[k] for k, _ in VIDEO_KEYS} for row in rows]
    out_rows = [{**key, **base, "error": errors.get(i)} for i, key in enumerate(keys)]
    return out_rows, [arrays.get(i) for i in range(len(rows))]


# -- text -------------------------------------------------------------------------------------
def text_store(cfg: Config) -> FeatureStore:
    from pipeline.cues_stage import cues_table
    from pipeline.model_identity import model_identity

    t = cfg.features.text
    inputs = {
        "kind": "text",
        "stage_version": STAGE_VERSION,
        "encoder": t.encoder,
        "model": model_identity(str(t.path)) if t.path else "bundled-default",
        "tokenizer": model_identity(str(t.tokenizer)) if t.tokenizer else None,
        "template": t.template,
        "n_t": t.n_t,
        "cues_fingerprint": cues_table(cfg).fingerprint,
    }
    return FeatureStore(cfg.cache.root, cfg.dataset.name, inputs, FRAME_KEYS, cfg.cache.lock_timeout_s)


def cue_frames(cfg: Config) -> pa.Table:
    """Every frame of the current cues table: keys, cues, status, error."""
    from pipeline.cues_stage import cues_table

    cues = cues_table(cfg).read(columns=CUE_FRAME_SCHEMA.names)
    return cues.sort_by([(k, "ascending") for k, _ in FRAME_KEYS])


class CachedSentenceEncoder:
    """Wraps a text encoder so each distinct sentence is embedded once for the whole run."""

    def __init__(self, encoder, max_items: int = 1_000_000):
        self.encoder, self.max_items = encoder, max_items
        self.cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self.encoded = 0  # sentences actually sent to the model
        self.name, self.dim = encoder.name, encoder.dim

    def provenance(self) -> dict:
        return self.encoder.provenance()

    def encode_sentences(self, sentences: list[str]) -> np.ndarray:
        new = [s for s in dict.fromkeys(sentences) if s not in self.cache]
        if new:
            vectors = self.encoder.encode_sentences(new)
            self.encoded += len(new)
            for s, v in zip(new, vectors):
                self.cache[s] = np.asarray(v, dtype=np.float32)
            while len(self.cache) > self.max_items:
                self.cache.popitem(last=False)
        return np.stack([self.cache[s] for s in sentences]) if sentences else np.zeros((0, self.dim), np.float32)


def make_text_encoder(cfg: Config) -> CachedSentenceEncoder:
    from pipeline.text_features import build_text_encoder

    t = cfg.features.text
    kwargs: dict = {"device": cfg.features.device, "batch_size": t.batch_size}
    if t.encoder == "imagebind":
        kwargs |= {"weights_path": str(t.path) if t.path else None, "tokenizer_path": str(t.tokenizer) if t.tokenizer else None}
    else:
        kwargs["path"] = str(t.path) if t.path else None
    return CachedSentenceEncoder(build_text_encoder(t.encoder, **kwargs))


def text_batch(cfg: Config, encoder: CachedSentenceEncoder, batch: pa.Table) -> tuple[list[dict], list]:
    from pipeline.text_features import embed_cues

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
        key = {k: r[k] for k, _ in FRAME_KEYS}
        error = None if i in arrays else f"no cues for this frame: {r['error'] or 'cue status ' + str(r['status'])}"
        out_rows.append({**key, **base, "valid": valid.get(i), "error": error})
    return out_rows, [arrays.get(i) for i in range(len(rows))]
