"""What a cue reasoner returns per caption: the LLM backends (pipeline/text/reasoners.py) and the
rule-based stand-in (pipeline/text/rule_reasoner.py) alike. Its own module so that the stand-in
does not import torch and transformers for a dataclass (~300 MiB of the cue stage's memory)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ReasonerResult:
    raw_text: str | None
    n_tokens: int | None  # generated tokens, the ending EOS included
    status: str  # "ok" or "error"
    error: str | None = None
