"""Feature store: numeric arrays in memory-mappable .npy shards plus a Parquet index.

Layout (inside the cache): `ROOT/{dataset}/features_index/{fingerprint}/`
  part-*.parquet      the index (a CacheTable): key -> shard file, row offset, row count
  shards/{id}.npy     float32 arrays (rows, *item_shape), one per written batch

Each batch writes its shard atomically first and its index part second, so a kill leaves at
worst an unreferenced shard, never an index row pointing at a missing or partial file. Shard
names carry the writer's PID; the first write of a store object removes the unreferenced shards
(and temporaries) of writers that are no longer running. Reading
memory-maps shards (`np.load(mmap_mode="r")`), so training touches only the pages it uses and
memory does not grow with the number of stored videos; lookup by key is a dict hit.

Why .npy and not a library store (zarr, safetensors): .npy is memory-mappable by numpy alone,
appends as independent files (one per batch, which is what atomic batch writes need), and
loads from any tool without a schema.
"""
from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.common.atomic import atomic_path, pid_alive, sweep_temporaries
from pipeline.store.cache_table import CacheTable

STAGE = "features_index"

INDEX_FIELDS = [
    ("kind", pa.string()),  # "audio" or "text"
    ("variant", pa.string()),  # audio condition (normal, mute, wgn_10db, ...) or the text encoder setting
    ("shard", pa.string()),  # file name under shards/
    ("offset", pa.int64()),  # first row in the shard
    ("shape", pa.list_(pa.int32())),  # item shape, e.g. [T, 128] or [N_T, d]
    ("valid", pa.list_(pa.bool_())),  # text: which of the N_T cue slots hold a real cue
    ("n_valid", pa.int32()),
    ("encoder", pa.string()),
    ("weights", pa.string()),  # sha256 of the weights file, or "random seed N", or "none"
    ("status", pa.string()),
    ("error", pa.string()),
]


def index_schema(key_fields: Sequence[tuple[str, pa.DataType]]) -> pa.Schema:
    """Key fields first; an index field may itself be a key (audio features key on `variant`)."""
    names = {name for name, _ in key_fields}
    return pa.schema(list(key_fields) + [f for f in INDEX_FIELDS if f[0] not in names])


class FeatureStore:
    """One encoder configuration's features: write batches, read by key."""

    def __init__(self, root, dataset: str, inputs: dict, key_fields: Sequence[tuple[str, pa.DataType]], lock_timeout_s: float = 3600.0):
        schema = index_schema(key_fields)
        self.key_columns = tuple(name for name, _ in key_fields)
        self.table = CacheTable(root, dataset, STAGE, inputs, schema, self.key_columns, lock_timeout_s)
        self.path = self.table.path
        self.shard_dir = self.path / "shards"
        self._lookup: dict[tuple, tuple[str, int, tuple[int, ...], list | None]] | None = None
        self._maps: dict[str, np.ndarray] = {}
        self._swept = False

    def __getstate__(self) -> dict:
        # DataLoader workers receive a pickled copy: send paths, not memory maps or the index,
        # which each worker rebuilds lazily (an mmap pickles as a full copy of its data).
        state = dict(self.__dict__)
        state["_lookup"], state["_maps"] = None, {}
        return state

    # -- writing ------------------------------------------------------------------------------
    def _sweep(self) -> None:
        """Remove what killed writers left: temporaries, and shards no index row refers to."""
        self._swept = True
        sweep_temporaries(self.shard_dir)
        if not self.shard_dir.is_dir():
            return
        referenced = set(self.table.read(columns=["shard"])["shard"].to_pylist())
        for shard in self.shard_dir.glob("*-*.npy"):
            pid = shard.name.split("-", 1)[0]
            if shard.name not in referenced and pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
                shard.unlink(missing_ok=True)

    def write(self, rows: list[dict], arrays: list[np.ndarray | None]) -> Path | None:
        """Append one batch: `rows[i]` holds the key columns plus kind/variant/encoder/weights/
        status/error (and `valid` for text); `arrays[i]` is its float32 array, None for error rows.
        Items of one shape share a shard (5 s and 10 s videos give two)."""
        if len(rows) != len(arrays):
            raise ValueError("rows and arrays differ in length")
        if not self._swept:
            self._sweep()
        by_shape: dict[tuple, list[int]] = {}
        for i, arr in enumerate(arrays):
            if arr is not None:
                by_shape.setdefault(tuple(arr.shape), []).append(i)
        place: dict[int, tuple[str, int]] = {}
        for members in by_shape.values():
            stacked = np.stack([np.asarray(arrays[i], dtype=np.float32) for i in members])  # (n, *shape)
            shard_name = f"{os.getpid()}-{uuid.uuid4().hex}.npy"
            self.shard_dir.mkdir(parents=True, exist_ok=True)
            with atomic_path(self.shard_dir / shard_name) as tmp:
                with open(tmp, "wb") as fh:
                    np.save(fh, stacked)
            place.update({i: (shard_name, offset) for offset, i in enumerate(members)})
        out = []
        for i, (row, arr) in enumerate(zip(rows, arrays)):
            rec = dict(row)
            if arr is None:
                rec.update(shard=None, offset=None, shape=None)
                rec.setdefault("status", "error")
            else:
                rec.update(shard=place[i][0], offset=place[i][1], shape=list(arr.shape))
                rec.setdefault("status", "ok")
            if rec.get("valid") is not None:
                rec["n_valid"] = int(sum(rec["valid"]))
            out.append(rec)
        self._lookup = None
        return self.table.write(pa.Table.from_pylist(out, schema=self.table.schema))

    # -- reading ------------------------------------------------------------------------------
    def _index(self) -> dict:
        if self._lookup is None:
            idx = self.table.read()
            idx = idx.filter(pc.equal(idx["status"], "ok"))
            cols = {c: idx[c].to_pylist() for c in (*self.key_columns, "shard", "offset", "shape", "valid")}
            self._lookup = {
                tuple(cols[k][i] for k in self.key_columns): (cols["shard"][i], cols["offset"][i], tuple(cols["shape"][i]), cols["valid"][i])
                for i in range(idx.num_rows)
            }
        return self._lookup

    def _map(self, shard: str) -> np.ndarray:
        if shard not in self._maps:
            self._maps[shard] = np.load(self.shard_dir / shard, mmap_mode="r")
        return self._maps[shard]

    def __contains__(self, key: tuple) -> bool:
        return tuple(key) in self._index()

    def keys(self) -> list[tuple]:
        return list(self._index())

    def get(self, key: tuple) -> np.ndarray:
        """The array stored for `key` (a read-only memory-mapped view)."""
        try:
            shard, offset, _, _ = self._index()[tuple(key)]
        except KeyError:
            raise KeyError(f"no features for {dict(zip(self.key_columns, key))} in {self.path}") from None
        return self._map(shard)[offset]

    def get_valid(self, key: tuple) -> np.ndarray:
        """Validity mask of a text item (all True when none was stored)."""
        _, _, shape, valid = self._index()[tuple(key)]
        return np.asarray(valid if valid is not None else [True] * shape[0], dtype=bool)

    def provenance(self) -> dict:
        return json.loads((self.path / "_meta.json").read_text())["inputs"]
