"""A `teso` process killed with SIGKILL leaves no temporary Prefect server behind."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest


def _children_running(parent: int) -> list[int]:
    """Processes started through flows.server_guard for `parent` that are still alive."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
            state = next(line for line in (proc / "status").read_text().splitlines() if line.startswith("State:"))
        except (OSError, StopIteration):
            continue
        if b"flows.server_guard" in cmd and str(parent).encode() in cmd and "Z" not in state:
            found.append(int(proc.name))
    return found


@pytest.mark.slow
def test_the_temporary_server_stops_when_its_command_is_killed(tmp_path):
    script = textwrap.dedent(
        """
        import time
        from flows import prefect_env
        prefect_env.configure()
        prefect_env.guard_temporary_server()
        from prefect import flow

        @flow
        def waiting():
            print("running", flush=True)
            time.sleep(300)

        waiting()
        """
    )
    env = os.environ | {"PREFECT_HOME": str(tmp_path / "prefect")}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout.readline().strip() == "running"  # the flow runs: its server is up
        servers = _children_running(proc.pid)
        assert len(servers) == 1
        os.kill(proc.pid, signal.SIGKILL)  # the process alone, not its group: as a user's kill -9 does
        proc.wait()
        deadline = time.monotonic() + 30
        while _children_running(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _children_running(proc.pid), "the temporary Prefect server outlived its command"
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in _children_running(proc.pid):
            os.kill(pid, signal.SIGKILL)
