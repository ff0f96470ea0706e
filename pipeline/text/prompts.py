"""Prompt templates as text files in `prompts/`: loading, listing, rendering, fingerprinting.

`NAME.txt` is the user message and `NAME.system.txt` (optional) the system message. Cue templates
hold a `{caption}` placeholder; the captioning instruction has none and is used as it is. The sha256
of a template covers both messages, so the cache of a stage that used it goes stale when either
changes.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

PROMPTS_DIR = Path(__file__).resolve().parents[2] / "prompts"
PLACEHOLDER = "{caption}"
_SYSTEM_SUFFIX = ".system.txt"


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    text: str  # the user message, with PLACEHOLDER for cue templates
    system: str  # "" when the template has no system message
    sha256: str  # of system and text together

    def render(self, caption: str) -> str:
        """The user message for one caption."""
        if PLACEHOLDER not in self.text:
            raise ValueError(f"prompt template {self.name!r} has no {PLACEHOLDER} placeholder; use its .text as it is")
        if not isinstance(caption, str) or not caption.strip():
            raise ValueError(f"prompt template {self.name!r}: the caption is empty")
        # str.replace, not str.format: demonstrations may contain braces (JSON) of their own.
        return self.text.replace(PLACEHOLDER, caption.strip())


def _dir(prompts_dir: str | Path | None) -> Path:
    path = Path(prompts_dir) if prompts_dir is not None else PROMPTS_DIR
    if not path.is_dir():
        raise FileNotFoundError(f"prompt templates folder {path} does not exist")
    return path


def list_templates(prompts_dir: str | Path | None = None) -> list[str]:
    """Names of the templates in the folder, sorted."""
    files = _dir(prompts_dir).glob("*.txt")
    return sorted(f.name[: -len(".txt")] for f in files if not f.name.endswith(_SYSTEM_SUFFIX))


def template_sha256(text: str, system: str) -> str:
    # The separator keeps ("ab", "") and ("a", "b") apart.
    return hashlib.sha256(system.encode() + b"\0" + text.encode()).hexdigest()


def load_template(name: str, prompts_dir: str | Path | None = None) -> PromptTemplate:
    """The template NAME from `prompts/` (or from prompts_dir)."""
    folder = _dir(prompts_dir)
    if not name or Path(name).name != name or name.endswith((".txt", ".system")):
        raise ValueError(f"bad prompt template name {name!r}: give the bare name, e.g. 'cot_fewshot'")
    path = folder / f"{name}.txt"
    if not path.is_file():
        available = ", ".join(list_templates(folder)) or "none"
        raise ValueError(f"unknown prompt template {name!r} in {folder}; available: {available}")
    text = path.read_text(encoding="utf-8").strip()
    if not text:
        raise ValueError(f"prompt template {path} is empty")
    system_path = folder / f"{name}{_SYSTEM_SUFFIX}"
    system = system_path.read_text(encoding="utf-8").strip() if system_path.is_file() else ""
    return PromptTemplate(name=name, text=text, system=system, sha256=template_sha256(text, system))
