"""The `reference` captioning backend: a dataset's own scene descriptions stand in for LLaVA.

Reads `ROOT/scene_descriptions.jsonl` (one JSON object per frame with `label`, `uid`, `frame`,
`description`; the synthetic generator writes it, and any dataset that ships captions can be
converted to it). Used where no captioning weights exist, such as the CPU demo.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pipeline.data.layout import DESCRIPTIONS_FILE  # also importable from here (pipeline/text/backends.py)


@dataclass
class CaptionResult:
    text: str | None
    n_tokens: int | None
    status: str  # "ok" or "error"
    error: str | None = None


class ReferenceCaptioner:
    name = "reference"

    def __init__(self, dataset_root: str | Path):
        self.path = Path(dataset_root) / DESCRIPTIONS_FILE
        if not self.path.is_file():
            raise FileNotFoundError(
                f"reference captions need {self.path}; this dataset ships no scene descriptions, "
                "so use captions.backend=hf or vllm"
            )
        self.descriptions: dict[tuple[str, str, int], str] = {}
        self.bad_lines: list[str] = []
        self._stamp: tuple[int, int] | None = None
        self._load()

    def _load(self) -> None:
        """(Re)read the file; a long-lived worker (`teso serve`) re-reads it when it has changed,
        e.g. grown with new videos' descriptions."""
        st = self.path.stat()
        descriptions, bad_lines = {}, []
        for lineno, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                descriptions[(str(rec["label"]), str(rec["uid"]), int(rec["frame"]))] = str(rec["description"])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                bad_lines.append(f"line {lineno}: {type(exc).__name__}: {exc}")
        self.descriptions, self.bad_lines, self._stamp = descriptions, bad_lines, (st.st_size, st.st_mtime_ns)

    def _reload_if_changed(self) -> None:
        try:
            st = self.path.stat()
        except OSError:
            return  # gone: keep what was read; the keys it lacks become error rows
        if (st.st_size, st.st_mtime_ns) != self._stamp:
            self._load()

    def provenance(self) -> dict:
        return {"backend": self.name, "path": str(self.path)}

    def caption(self, images: list, keys: list[dict]) -> list[CaptionResult]:
        """`keys` hold label (= subset), uid and frame; images are not needed."""
        self._reload_if_changed()
        out = []
        for key in keys:
            text = self.descriptions.get((key["label"], key["uid"], int(key["frame"])))
            if text is None:
                hint = f" ({len(self.bad_lines)} unreadable lines in the file)" if self.bad_lines else ""
                out.append(CaptionResult(None, None, "error", f"no reference description for {key['label']}/{key['uid']}/{key['frame']} in {self.path}{hint}"))
            else:
                out.append(CaptionResult(text, None, "ok"))  # no tokenizer involved
        return out
