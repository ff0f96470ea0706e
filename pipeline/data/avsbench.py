"""Index an AVSBench-semantic release (and its AVS-V3 splits) into a per-frame manifest.

Layout (pipeline/data/layout.py): `ROOT/metadata.csv` (`vid,uid,s_min,s_sec,a_obj,split,label`),
`ROOT/label2idx.json`, and per video `ROOT/{label}/{uid}/frames/{i}.jpg`, `labels_rgb/{i}.png`,
`labels_semantic/{i}.png`, `audio.wav`. v1s and v1m videos have 5 frames (1 fps), v2 has 10.
AVSBench labels only the first frame of a v1s training video, so its other frames get
`has_mask=False` (mask paths null) whatever lies on disk: the reference loaders never read them.
That rule follows the video's split in metadata.csv, also when an AVS-V3 split gives it another role.

AVS-V3 (GAVS) split files have metadata.csv's columns and list subsets of its rows:
`ROOT/v3/meta_v3_seen_train.csv`, `meta_v3_seen_val.csv`, `meta_v3_unseen.csv`, and
`ROOT/v3/v3_{k}_shot/{train,test}.csv`. With a V3 setting the manifest's `split` column is the
video's role, taken from the file that lists it (train/val/test), instead of its metadata split.
The files' own `split` column holds the release's values (`seen_train`, `unseen`,
`v3_1_shot_train`, ...; layout.v3_split_values); a value naming another file is an error row.
A video's other fields come from metadata.csv, which may also be the copy the GAVS repository keeps
in `ROOT/v3/` (used when `ROOT/metadata.csv` is absent). Tested against the released files
(tests/fixtures/release/).

Bad data never stops indexing and never drops a row: a missing or broken frame, mask or soundtrack
marks its frame's row `status='error'` with a message `kind (detail): /abs/path`; a malformed CSV
line becomes one error row with `frame=-1` naming the file and line. Only configuration problems
(no metadata.csv, a header without the required columns, a missing V3 split file) raise.

The older AVSBench-object release (S4/MS3: `visual_frames/`, `gt_masks/`, pickled log-mels) is not
read here: its per-subset CSVs, file naming and binary masks differ throughout, so it would need a
reader of its own rather than a branch of this one.
"""
from __future__ import annotations

import csv
import hashlib
import json
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import pyarrow as pa
from PIL import Image, UnidentifiedImageError

from pipeline.common.errors import UserError
from pipeline.common.names import unsafe_name
from pipeline.data.audio_io import AudioError, audio_info
from pipeline.data.layout import (
    AUDIO_FILE,
    FRAME_SUFFIX,
    FRAMES_DIR,
    FRAMES_PER_VIDEO,
    LABEL2IDX_FILE,
    LABELS_RGB_DIR,
    LABELS_SEMANTIC_DIR,
    MASK_SUFFIX,
    METADATA_COLUMNS,
    METADATA_FILE,
    SPLITS,
    SUBSETS,
    V3_SEEN_TRAIN,
    V3_METADATA,
    V3_SEEN_VAL,
    V3_UNSEEN,
    v3_shot_file,
    v3_split_values,
)
from pipeline.data.palette import NUM_CLASSES, rgb_to_index

V3_SETTINGS = ("zero_shot", "1_shot", "3_shot", "5_shot")

MANIFEST_SCHEMA = pa.schema(
    [
        ("dataset", pa.string()),
        ("subset", pa.string()),
        ("split", pa.string()),
        ("uid", pa.string()),
        ("vid", pa.string()),
        ("frame", pa.int32()),  # -1 on a row standing for a CSV line that names no indexable video
        ("frame_path", pa.string()),
        ("mask_rgb_path", pa.string()),  # null when the frame has no mask
        ("mask_semantic_path", pa.string()),  # null when the frame has no mask
        ("audio_path", pa.string()),  # null on frame -1 rows
        ("has_mask", pa.bool_()),
        ("a_obj", pa.string()),
        ("audio_sr", pa.int32()),  # null when the audio is unreadable
        ("audio_seconds", pa.float32()),  # null when the audio is unreadable
        # sha256 (16 hex) of the file's bytes; later stages key their rows on it, so a replaced file
        # is recomputed and nothing else is. Null when the file is missing or unreadable.
        ("frame_sha", pa.string()),
        ("audio_sha", pa.string()),
        ("status", pa.string()),  # 'ok' or 'error'
        ("error", pa.string()),  # null when ok; several problems joined with "; "
    ]
)


class DatasetError(UserError, ValueError):
    """The dataset folder cannot be indexed at all (a configuration problem, not a bad row)."""


class MaskError(ValueError):
    """A mask image that decodes but does not hold a valid class map."""


# -- single files -------------------------------------------------------------------------------
def read_label2idx(root: str | Path) -> dict[str, int]:
    """`label2idx.json` as {class name: 1-based id}, background = 1."""
    path = Path(root) / LABEL2IDX_FILE
    if not path.is_file():
        raise DatasetError(f"{LABEL2IDX_FILE} not found: {path.absolute()}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{LABEL2IDX_FILE} unreadable ({exc}): {path.absolute()}") from exc
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v >= 1 for k, v in data.items()
    ):
        raise DatasetError(f"{LABEL2IDX_FILE} must map class names to integer ids >= 1: {path.absolute()}")
    if len(set(data.values())) != len(data):
        raise DatasetError(f"{LABEL2IDX_FILE} gives two classes the same id: {path.absolute()}")
    return data


def load_frame(path: str | Path) -> Image.Image:
    """A video frame as an RGB PIL image (fully decoded)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"frame missing: {path}")
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (OSError, ValueError) as exc:
        raise DatasetError(f"frame unreadable ({_image_reason(exc, path)}): {path}") from exc


def decode_mask(path: str | Path, kind: Literal["rgb", "semantic"]) -> np.ndarray:
    """(H, W) int64 class map of a `labels_rgb` (palette colours) or `labels_semantic` (gray
    value = class index) PNG. Raises MaskError when a semantic mask holds values beyond the
    palette or colour that is not gray; PIL's OSError when the file cannot be decoded."""
    if kind not in ("rgb", "semantic"):
        raise ValueError(f"mask kind must be 'rgb' or 'semantic', got {kind!r}")
    with Image.open(path) as im:
        if kind == "rgb":
            return rgb_to_index(np.asarray(im.convert("RGB")))
        if im.mode in ("RGB", "RGBA"):
            rgb = np.asarray(im.convert("RGB"))
            if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])):
                raise MaskError(f"semantic mask is colour ({im.mode}), expected gray class indices")
            values = rgb[..., 0]
        elif im.mode in ("L", "P", "I", "I;16"):
            values = np.asarray(im)  # the stored value is the class index, never mapped through a palette
        else:
            raise MaskError(f"semantic mask has unsupported image mode {im.mode}")
    index = values.astype(np.int64)
    if index.size and (index.min() < 0 or index.max() >= NUM_CLASSES):
        raise MaskError(f"class value {int(index.max())} outside 0..{NUM_CLASSES - 1}")
    return index


def binary_mask(class_map: np.ndarray) -> np.ndarray:
    """(H, W) bool: True on every non-background pixel (the binary AVS target)."""
    return np.asarray(class_map) != 0


def _image_reason(exc: Exception, path: Path) -> str:
    if isinstance(exc, UnidentifiedImageError):
        return "cannot identify image file"
    # PIL often repeats the path inside its message; the caller appends it once.
    text = str(exc).replace(repr(str(path)), "").replace(str(path), "").strip(" :")
    return text or type(exc).__name__


# -- metadata -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class VideoMeta:
    uid: str
    vid: str
    subset: str  # the `label` column
    split: str  # the metadata split (decides the v1s mask rule)
    a_obj: str
    where: str  # "metadata.csv line N", for messages
    line: int


@dataclass(frozen=True)
class BadRow:
    """A CSV line that cannot describe a video; becomes one error row with frame=-1."""

    uid: str | None
    subset: str  # raw `label` value ('' when absent)
    split: str  # raw `split` value ('' when absent)
    message: str  # "kind (details): file line N"; details never contain "; " (the row separator)
    line: int


def metadata_file(root: str | Path) -> str:
    """metadata.csv's path relative to the root: `metadata.csv`, else the GAVS copy `v3/metadata.csv`."""
    root = Path(root)
    for rel in (METADATA_FILE, V3_METADATA):
        if (root / rel).is_file():
            return rel
    raise DatasetError(f"{METADATA_FILE} not found: {root / METADATA_FILE} (nor the GAVS copy {root / V3_METADATA})")


def _read_rows(root: Path, rel: str, splits: Sequence[str] = SPLITS) -> list[VideoMeta | BadRow]:
    """The rows of one metadata-format CSV; `splits` are the values its `split` column may hold."""
    path = root / rel
    if not path.is_file():
        raise DatasetError(f"{rel} not found: {path}")
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader, [])]
        missing = [c for c in METADATA_COLUMNS if c not in header]
        if missing:
            raise DatasetError(f"{path}: header {header} lacks columns {missing}")
        col = {name: header.index(name) for name in METADATA_COLUMNS}
        out: list[VideoMeta | BadRow] = []
        for raw in reader:
            if not any(v.strip() for v in raw):
                continue  # blank line
            where = f"{rel} line {reader.line_num}"
            if len(raw) != len(header):
                msg = f"bad metadata row ({len(raw)} columns, header has {len(header)}): {where}"
                out.append(BadRow(None, "", "", msg, reader.line_num))
                continue
            v = {name: raw[i].strip() for name, i in col.items()}
            problems = []
            if not v["uid"]:
                problems.append("missing uid")
            elif unsafe_name(v["uid"]):  # it names the video's folder: never a path outside ROOT
                problems.append(f"unsafe uid {unsafe_name(v['uid'])}")
            if not v["label"]:
                problems.append("missing label")
            elif v["label"] not in SUBSETS:
                problems.append(f"unknown label {v['label']!r} not in {'/'.join(SUBSETS)}")
            if v["split"] not in splits and tuple(splits) == SPLITS:
                problems.append(f"unknown split {v['split']!r} not in {'/'.join(splits)}")
            elif v["split"] not in splits:  # a V3 file: the value names another file's videos
                problems.append(f"split {v['split']!r} contradicts the file, whose rows say {' or '.join(splits)}")
            if problems:
                msg = f"bad metadata row ({', '.join(problems)}): {where}"
                out.append(BadRow(v["uid"] or None, v["label"], v["split"], msg, reader.line_num))
            else:
                out.append(VideoMeta(v["uid"], v["vid"], v["label"], v["split"], v["a_obj"], where, reader.line_num))
    return out


def _v3_files(setting: str) -> dict[str, str]:
    """{role: split file relative to the root} of one V3 setting; validation is always seen_val."""
    if setting == "zero_shot":
        train, test = V3_SEEN_TRAIN, V3_UNSEEN
    else:
        k = setting.split("_")[0]
        train, test = v3_shot_file(k, "train"), v3_shot_file(k, "test")
    return {"train": train, "val": V3_SEEN_VAL, "test": test}


@dataclass(frozen=True)
class _Entry:
    """One video to index (meta set) or one bad line to report (bad set), under its output split."""

    split: str
    meta: VideoMeta | None = None
    bad: BadRow | None = None


Entry = _Entry  # public name for callers that index video by video (pipeline/data/signatures.py)


def _metadata_entries(
    rows: list[VideoMeta | BadRow],
) -> tuple[dict[str, VideoMeta], dict[str, BadRow], list[_Entry]]:
    """Valid videos by uid, bad rows by uid, and the entries of a plain (non-V3) index."""
    videos: dict[str, VideoMeta] = {}
    bad_by_uid: dict[str, BadRow] = {}
    entries: list[_Entry] = []
    for row in rows:
        if isinstance(row, BadRow):
            if row.uid is not None:
                bad_by_uid.setdefault(row.uid, row)
            entries.append(_Entry(row.split, bad=row))
        elif row.uid in videos:
            first = videos[row.uid]
            msg = f"duplicate uid (first listed at {first.where}): {row.where}"
            entries.append(_Entry(row.split, bad=BadRow(row.uid, row.subset, row.split, msg, row.line)))
        else:
            videos[row.uid] = row
            entries.append(_Entry(row.split, meta=row))
    return videos, bad_by_uid, entries


def _v3_entries(
    root: Path, setting: str, videos: dict[str, VideoMeta], bad_by_uid: dict[str, BadRow], rows: list
) -> list[_Entry]:
    """Entries whose split is the V3 role; metadata problems are reported for listed uids and
    for metadata lines whose uid is unknown (they might be any video)."""
    entries = [_Entry(r.split, bad=r) for r in rows if isinstance(r, BadRow) and r.uid is None]
    meta_rel = metadata_file(root)
    for role, rel in _v3_files(setting).items():
        seen: dict[str, str] = {}
        for row in _read_rows(root, rel, v3_split_values(rel)):
            if isinstance(row, BadRow):
                entries.append(_Entry(role, bad=row))
                continue
            if row.uid in seen:
                msg = f"duplicate uid (first listed at {seen[row.uid]}): {row.where}"
                entries.append(_Entry(role, bad=BadRow(row.uid, row.subset, role, msg, row.line)))
                continue
            seen[row.uid] = row.where
            meta = videos.get(row.uid)
            if meta is None:
                if row.uid in bad_by_uid:
                    entries.append(_Entry(role, bad=bad_by_uid[row.uid]))
                else:
                    msg = f"uid not in {METADATA_FILE} (listed at {row.where}): {root / meta_rel}"
                    entries.append(_Entry(role, bad=BadRow(row.uid, row.subset, role, msg, row.line)))
            elif meta.subset != row.subset:
                detail = f"label {row.subset!r} but {meta.where} says {meta.subset!r}"
                msg = f"split-file mismatch ({detail}): {row.where}"
                entries.append(_Entry(role, bad=BadRow(row.uid, meta.subset, role, msg, row.line)))
            else:
                entries.append(_Entry(role, meta=meta))
    return entries


# -- per-video checks ---------------------------------------------------------------------------
def _check_image(path: Path, what: str, verify: str) -> tuple[tuple[int, int] | None, str | None]:
    """(size, error) of one frame or mask; decodes fully when verify == 'full'."""
    if not path.is_file():
        return None, f"{what} missing: {path}"
    try:
        with Image.open(path) as im:
            size = im.size
            if verify == "full":
                im.load()
        return size, None
    except (OSError, ValueError) as exc:
        return None, f"{what} unreadable ({_image_reason(exc, path)}): {path}"


def _check_mask(path: Path, kind: str, verify: str, frame_size: tuple[int, int] | None) -> str | None:
    # Any colour is a valid rgb mask (off-palette colours read as background, as in AVSBench), so
    # decoding its pixels is the whole check; a semantic mask's values must also be class indices.
    size, err = _check_image(path, "mask", verify if kind == "rgb" else "header")
    if err:
        return err
    if verify == "full" and kind == "semantic":
        try:
            decode_mask(path, kind)
        except MaskError as exc:
            return f"mask invalid ({exc}): {path}"
        except (OSError, ValueError) as exc:
            return f"mask unreadable ({_image_reason(exc, path)}): {path}"
    if frame_size is not None and size != frame_size:
        return f"mask size mismatch ({size[0]}x{size[1]}, frame is {frame_size[0]}x{frame_size[1]}): {path}"
    return None


def content_sha(path: Path) -> str | None:
    """sha256 (first 16 hex digits) of a file's bytes; None when it cannot be read."""
    try:
        with open(path, "rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()[:16]
    except OSError:
        return None


def _video_rows(root: Path, dataset: str, entry: _Entry, verify: str) -> list[dict]:
    meta = entry.meta
    base = dict(dataset=dataset, subset=meta.subset, split=entry.split, uid=meta.uid, vid=meta.vid, a_obj=meta.a_obj)
    vdir = root / meta.subset / meta.uid
    audio_path = vdir / AUDIO_FILE
    try:
        sr, _, seconds = audio_info(audio_path)
        audio_err = None
    except AudioError as exc:
        sr, seconds, audio_err = None, None, str(exc)
    audio_sha = None if audio_err else content_sha(audio_path)
    rows = []
    for i in range(FRAMES_PER_VIDEO[meta.subset]):
        frame_path = vdir / FRAMES_DIR / f"{i}{FRAME_SUFFIX}"
        has_mask = not (meta.subset == "v1s" and meta.split == "train" and i > 0)
        rgb = vdir / LABELS_RGB_DIR / f"{i}{MASK_SUFFIX}" if has_mask else None
        sem = vdir / LABELS_SEMANTIC_DIR / f"{i}{MASK_SUFFIX}" if has_mask else None
        size, frame_err = _check_image(frame_path, "frame", verify)
        errors = [frame_err] if frame_err else []
        if has_mask:
            mask_errors = (_check_mask(rgb, "rgb", verify, size), _check_mask(sem, "semantic", verify, size))
            errors += [e for e in mask_errors if e]
        if audio_err:
            errors.append(audio_err)
        rows.append(
            {
                **base,
                "frame": i,
                "frame_path": str(frame_path),
                "mask_rgb_path": str(rgb) if rgb else None,
                "mask_semantic_path": str(sem) if sem else None,
                "audio_path": str(audio_path),
                "has_mask": has_mask,
                "audio_sr": sr,
                "audio_seconds": seconds,
                "frame_sha": None if frame_err else content_sha(frame_path),
                "audio_sha": audio_sha,
                "status": "error" if errors else "ok",
                "error": "; ".join(errors) if errors else None,
            }
        )
    return rows


def _bad_row(dataset: str, entry: _Entry) -> dict:
    bad = entry.bad
    return {
        "dataset": dataset,
        "subset": bad.subset,
        "split": entry.split,
        "uid": bad.uid if bad.uid is not None else f"line {bad.line}",
        "vid": None,
        "frame": -1,
        "frame_path": None,
        "mask_rgb_path": None,
        "mask_semantic_path": None,
        "audio_path": None,
        "has_mask": False,
        "a_obj": None,
        "audio_sr": None,
        "audio_seconds": None,
        "frame_sha": None,
        "audio_sha": None,
        "status": "error",
        "error": bad.message,
    }


# -- the manifest -------------------------------------------------------------------------------
_KIND = re.compile(r"^[^(:]+")


def error_kind(message: str) -> str:
    """'mask unreadable (cannot identify image file): /p' -> 'mask unreadable'."""
    m = _KIND.match(message)
    return m.group(0).strip() if m else message


@dataclass
class ManifestSummary:
    rows: int
    ok: int
    errors: int
    videos: int  # videos whose frames were indexed (bad CSV lines are not counted)
    error_kinds: Counter = field(default_factory=Counter)  # problem kind -> count over all rows
    dataset: str = ""
    examples: list[str] = field(default_factory=list)  # the first few error messages

    def __str__(self) -> str:
        text = (
            f"{self.dataset or 'dataset'} manifest: {self.rows} rows over {self.videos} videos, "
            f"{self.ok} ok, {self.errors} with errors"
        )
        if self.error_kinds:
            kinds = ", ".join(f"{k} x{n}" for k, n in self.error_kinds.most_common())
            text += f"; problems: {kinds}; e.g. " + " | ".join(self.examples)
        return text + "."


def summarize(table: pa.Table, dataset: str = "", n_examples: int = 3) -> ManifestSummary:
    """Counts of a manifest table (also usable on a manifest read back from the cache)."""
    status = table.column("status").to_pylist()
    errors = [e for e in table.column("error").to_pylist() if e]
    keys = zip(*(table.column(c).to_pylist() for c in ("subset", "split", "uid", "frame")))
    kinds = Counter(error_kind(part) for e in errors for part in e.split("; "))
    return ManifestSummary(
        rows=table.num_rows,
        ok=sum(s == "ok" for s in status),
        errors=sum(s == "error" for s in status),
        videos=len({k[:3] for k in keys if k[3] >= 0}),
        error_kinds=kinds,
        dataset=dataset,
        examples=errors[:n_examples],
    )


def _check_choice(name: str, values: Sequence[str] | None, allowed: Sequence[str]) -> set[str] | None:
    if values is None:
        return None
    if isinstance(values, str):
        raise ValueError(f"{name} must be a list, got the string {values!r}")
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise ValueError(f"unknown {name} {unknown}; expected some of {list(allowed)}")
    return set(values)


def manifest_entries(
    root: str | Path,
    subsets: Sequence[str] | None = None,
    splits: Sequence[str] | None = None,
    v3: str | None = None,
) -> list[_Entry]:
    """The videos to index and the bad CSV lines to report, filtered, from the CSV files alone
    (no image or audio is opened). Raises DatasetError / ValueError on configuration problems."""
    keep_subsets = _check_choice("subsets", subsets, SUBSETS)
    keep_splits = _check_choice("splits", splits, SPLITS)
    if v3 is not None and v3 not in V3_SETTINGS:
        raise ValueError(f"unknown v3 setting {v3!r}; expected one of {V3_SETTINGS}")
    root = Path(root).expanduser().absolute()
    if not root.is_dir():
        raise DatasetError(f"dataset root is not a folder: {root}")

    rows = _read_rows(root, metadata_file(root))
    videos, bad_by_uid, entries = _metadata_entries(rows)
    if v3 is not None:
        entries = _v3_entries(root, v3, videos, bad_by_uid, rows)

    def kept(e: _Entry) -> bool:
        subset = e.meta.subset if e.meta else e.bad.subset
        ok_subset = keep_subsets is None or subset not in SUBSETS or subset in keep_subsets
        return ok_subset and (keep_splits is None or e.split not in SPLITS or e.split in keep_splits)

    return [e for e in entries if kept(e)]


def bad_rows(dataset: str, entries: Sequence[_Entry]) -> list[dict]:
    """One error row per key of the bad entries; rows of one key (only bad lines can share one,
    e.g. a uid listed thrice) merge into one, their messages joined with "; "."""
    merged: dict[tuple, dict] = {}
    for row in (_bad_row(dataset, e) for e in entries if e.bad):
        key = (row["subset"], row["split"], row["uid"], row["frame"])
        if key in merged:
            merged[key]["error"] += "; " + row["error"]
        else:
            merged[key] = row
    return list(merged.values())


def video_rows(
    root: str | Path, dataset: str, entries: Sequence[_Entry], verify: str = "full", workers: int = 2, progress: bool = False
) -> list[list[dict]]:
    """Check the files of each video entry (`verify`: 'full' decodes every frame and mask, 'header'
    only opens them) on `workers` threads; one list of frame rows per entry, in order."""
    if verify not in ("full", "header"):
        raise ValueError(f"verify must be 'full' or 'header', got {verify!r}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    root = Path(root).expanduser().absolute()
    out: list[list[dict]] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        step = max(1, len(entries) // 20)
        for n, rows in enumerate(pool.map(lambda e: _video_rows(root, dataset, e, verify), entries), 1):
            out.append(rows)
            if progress and (n % step == 0 or n == len(entries)):
                print(f"manifest: checked {n}/{len(entries)} videos", flush=True)
    return out


def manifest_table_of(rows: Sequence[dict], schema: pa.Schema = MANIFEST_SCHEMA) -> pa.Table:
    """Rows (keys unique) as a table of `schema` sorted by (subset, split, uid, frame)."""
    rows = sorted(rows, key=lambda r: (r["subset"], r["split"], r["uid"], r["frame"]))
    return pa.Table.from_pylist(rows, schema=schema)


def build_manifest(
    root: str | Path,
    dataset: str,
    subsets: Sequence[str] | None = None,
    splits: Sequence[str] | None = None,
    v3: str | None = None,
    verify: str = "full",
    workers: int = 2,
    progress: bool = False,
) -> tuple[pa.Table, ManifestSummary]:
    """One row per (video, frame) in MANIFEST_SCHEMA, sorted by (subset, split, uid, frame).

    `subsets`/`splits` filter (None = all); `splits` filters the V3 role when `v3` is set. A
    bad row's subset or split only filters it out when that value is a valid one. `verify`:
    'full' decodes every frame and mask, 'header' only opens them. Checks run on `workers` threads.
    """
    if verify not in ("full", "header"):
        raise ValueError(f"verify must be 'full' or 'header', got {verify!r}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    entries = manifest_entries(root, subsets, splits, v3)
    todo = [e for e in entries if e.meta]
    out = bad_rows(dataset, entries)
    for rows in video_rows(root, dataset, todo, verify, workers, progress):
        out.extend(rows)
    table = manifest_table_of(out)
    return table, summarize(table, dataset)
