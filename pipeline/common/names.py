"""Identifiers that become file or folder names (dataset names, video uids, run and audio-condition
names): checked where they enter, so none can reach outside the folder it is joined to."""
from __future__ import annotations

import re

# Letters, digits, '-', '_' and '.', not starting with '.': never a separator, never `..`, never
# hidden. Every AVSBench uid fits (YouTube ids use '-' and '_').
SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")


def unsafe_name(value: str) -> str | None:
    """Why `value` cannot be a file name component, or None when it can."""
    if not isinstance(value, str) or not SAFE_NAME.fullmatch(value):
        return f"{value!r} may hold only letters, digits, '-', '_' and '.', and may not start with '.'"
    return None


def check_name(what: str, value: str) -> str:
    """`value` when it is a safe file name component; ValueError naming `what` otherwise."""
    problem = unsafe_name(value)
    if problem:
        raise ValueError(f"{what} {problem}")
    return value
