"""One loaded model per process and configuration.

Shards of a stage that run in the same process (thread task runner, retries, a long-running
`teso serve`) share the model instead of loading a 7B checkpoint again.
"""
from __future__ import annotations

import threading
from typing import Any, Callable

_lock = threading.Lock()
_workers: dict[str, Any] = {}
loads = 0  # how many models this process has built; tests assert a no-op run builds none


def get_worker(key: str, build: Callable[[], Any]) -> Any:
    global loads
    with _lock:
        if key not in _workers:
            _workers[key] = build()
            loads += 1
        return _workers[key]

