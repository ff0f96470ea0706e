"""Prefect's temporary API server, tied to the `teso` process that starts it.

Without PREFECT_API_URL, Prefect runs a command's flows against a temporary server (uvicorn in a
child process) and stops it when the command exits. A command killed with SIGKILL cannot stop it,
and the server would run on, orphaned. Started through this module (flows/prefect_env.py arranges
it), the server watches its parent and shuts itself down once the parent is gone:

    python -m flows.server_guard PARENT_PID -m uvicorn ARGS...
"""
from __future__ import annotations

import os
import runpy
import signal
import sys
import threading
import time

POLL_S = 0.5
GRACE_S = 10.0  # after SIGTERM, how long uvicorn may take to shut down before the process exits anyway


def _watch(parent: int) -> None:
    while os.getppid() == parent:  # a dead parent's children are re-parented (to init or a subreaper)
        time.sleep(POLL_S)
    os.kill(os.getpid(), signal.SIGTERM)  # uvicorn's own handler: a clean shutdown
    time.sleep(GRACE_S)
    os._exit(1)


def main(argv: list[str]) -> None:
    if len(argv) < 4 or argv[2] != "-m":
        raise SystemExit("usage: python -m flows.server_guard PARENT_PID -m MODULE [ARGS...]")
    threading.Thread(target=_watch, args=(int(argv[1]),), daemon=True).start()
    sys.argv = [argv[3], *argv[4:]]
    runpy.run_module(argv[3], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv)
