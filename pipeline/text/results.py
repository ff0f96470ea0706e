"""What a cue reasoner returns per caption: the LLM backends (pipeline/text/reasoners.py) and the
rule-based stand-in (pipeline/text/rule_reasoner.py) alike. Its own module so that the stand-in
does not import torch and transformers for a dataclass (they add ~200 MiB to a process; the
stand-in with WordNet loaded peaks at ~270 MiB without them)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ReasonerResult:
    raw_text: str | None
    n_tokens: int | None  # generated tokens, the ending EOS included
    status: str  # "ok" or "error"
    error: str | None = None
