"""The test harness itself: a test run killed with -9 leaves no `esm run` daemon behind
(tests/integration/e2e_support.py starts them to die with the test process)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.e2e_support import (
    REPO_ROOT,
    DaemonProcess,
    daemon_env,
    python_target,
    write_config,
)

pytestmark = pytest.mark.integration

STARTER = """
import sys, time
from pathlib import Path
from tests.integration.e2e_support import DaemonProcess, daemon_env
daemon = DaemonProcess(Path(sys.argv[1]), daemon_env(Path(sys.argv[2])), Path(sys.argv[3]))
daemon.start()
daemon.wait_ready()
print(daemon.pid, flush=True)
time.sleep(600)
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "State:\tZ" in status.read_text())


def test_a_test_process_killed_with_sigkill_takes_its_daemons_along(tmp_path: Path) -> None:
    # Given a test process that started an esm daemon (a memory source: no broker needed)
    mapping = {"name": "harness", "source": {"type": "memory", "lanes": 1},
               "target": python_target()}
    config = write_config(tmp_path, [mapping])
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    starter = subprocess.Popen(
        [sys.executable, "-c", STARTER, str(config), str(tmp_path / "journal"),
         str(tmp_path / "daemon.log")], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE)
    assert starter.stdout is not None
    daemon_pid = int(starter.stdout.readline() or b"0")
    assert daemon_pid and alive(daemon_pid), (tmp_path / "daemon.log").read_text()
    # When the test process is killed with SIGKILL (no cleanup of its own runs)
    starter.send_signal(signal.SIGKILL)
    starter.wait(10)
    # Then the daemon goes too
    deadline = time.monotonic() + 10
    while alive(daemon_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(daemon_pid), "the daemon outlived the test process that started it"


def test_sigusr1_prints_every_threads_stack_and_the_daemon_runs_on(tmp_path: Path) -> None:
    # Given a running daemon
    mapping = {"name": "stacks", "source": {"type": "memory", "lanes": 1},
               "target": python_target()}
    config = write_config(tmp_path, [mapping])
    log = tmp_path / "daemon.log"
    with DaemonProcess(config, daemon_env(tmp_path / "journal"), log) as daemon:
        daemon.wait_ready()
        # When it gets SIGUSR1
        os.kill(daemon.pid, signal.SIGUSR1)
        deadline = time.monotonic() + 5
        while "reader.py" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        # Then its log holds each thread's stack, the reader's included, and it still runs
        text = log.read_text()
        assert "Current thread" in text or "Thread 0x" in text
        assert 'File "' in text and "reader.py" in text
        assert daemon.get("/readyz")[0] == 200
