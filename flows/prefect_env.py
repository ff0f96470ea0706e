"""The process environment of a `teso` command: Prefect settings needed before `prefect` is first
imported, and the libraries' progress bars."""
from __future__ import annotations

import logging
import os
import subprocess

from pipeline.common.errors import UserError

DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    # a first flow on a fresh database takes ~15 s on 2 cores; the default 20 s start-up limit is too tight
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "HF_HUB_OFFLINE": "1",
}


def configure() -> None:
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)


class _NoUserErrorTraceback(logging.Filter):
    """Prefect logs a failed flow or task run with its traceback; for a UserError the message is
    the whole story (the command prints it once more as its last line), so the traceback goes."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[0] is not None and issubclass(record.exc_info[0], UserError):
            record.exc_info, record.exc_text = None, None
        return True


def hide_user_error_tracebacks() -> None:
    for name in ("prefect.flow_runs", "prefect.task_runs"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _NoUserErrorTraceback) for f in logger.filters):
            logger.addFilter(_NoUserErrorTraceback())


def quiet_libraries() -> None:
    """run.progress=false silences the libraries' own bars too (transformers' weight loading)."""
    from transformers.utils import logging as hf_logging  # transformers only when a command needs it

    hf_logging.disable_progress_bar()


def guard_temporary_server() -> None:
    """Start Prefect's temporary server through flows/server_guard.py, so that a `teso` command
    killed with SIGKILL leaves no server behind.

    Prefect 3.8's launcher (SubprocessASGIServer._run_uvicorn_command) offers no hook for the
    command line, so it runs here with a `subprocess` whose Popen puts the guard in front of the
    `python -m uvicorn ...` it builds; everything else about the server stays Prefect's."""
    from prefect.server.api import server  # ~1 s: Prefect imports it anyway to start the server

    launch = server.SubprocessASGIServer._run_uvicorn_command
    if getattr(launch, "guarded", False):
        return
    parent = os.getpid()

    class _GuardedSubprocess:
        TimeoutExpired = subprocess.TimeoutExpired

        @staticmethod
        def Popen(args, **kwargs):  # noqa: N802 (stands in for subprocess.Popen)
            python, *rest = args
            return subprocess.Popen([python, "-m", "flows.server_guard", str(parent), *rest], **kwargs)

    def guarded(self):
        server.subprocess = _GuardedSubprocess
        try:
            return launch(self)
        finally:
            server.subprocess = subprocess

    guarded.guarded = True
    server.SubprocessASGIServer._run_uvicorn_command = guarded
