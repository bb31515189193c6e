"""`esm run` as a subprocess, operated the way systemd and an operator do: sd_notify
messages on a fake NOTIFY_SOCKET (READY, WATCHDOG, RELOADING, STOPPING), SIGHUP reload of a
changed file (and refusal of a broken one), the admin API with a bearer token, and
`esm status`."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.integration.e2e_support import (
    DaemonProcess,
    daemon_env,
    python_target,
    run_cli,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.integration


def memory_mapping(name: str, batch_size: int = 5) -> dict[str, object]:
    records = [json.dumps({"id": f"{name}-{n}", "seq": n}) for n in range(20)]
    return {"name": name, "source": {"type": "memory", "records": records},
            "batch_size": batch_size, "target": python_target()}


class NotifySocket:
    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.received: list[str] = []

    def collect(self) -> list[str]:
        while True:
            try:
                self.received.append(self.sock.recv(4096).decode())
            except TimeoutError:
                return self.received

    def saw(self, prefix: str) -> bool:
        return any(m.startswith(prefix) for m in self.collect())


@pytest.fixture
def notify(tmp_path):
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.sock.close()


def test_systemd_notify_ready_watchdog_reload_and_stopping(tmp_path, notify):
    # Given `esm run` started by "systemd" with a notify socket and a 0.4 s watchdog
    config = write_config(tmp_path, [memory_mapping("a"), memory_mapping("b")])
    env = daemon_env(tmp_path / "journal.jsonl")
    env.update(NOTIFY_SOCKET=notify.path, WATCHDOG_USEC="400000")
    with DaemonProcess(config, env, tmp_path / "esm.log") as daemon:
        daemon.wait_ready()
        # Then it reports READY and pings the watchdog
        wait_until(lambda: notify.saw("READY=1"), 20, daemon.log_tail)
        wait_until(lambda: notify.collect().count("WATCHDOG=1") >= 2, 20, daemon.log_tail)
        # When b's settings change and systemd sends SIGHUP (ExecReload)
        document = yaml.safe_load(config.read_text())
        document["mappings"][1]["batch_size"] = 3
        config.write_text(yaml.safe_dump(document))
        before = len(notify.collect())
        os.kill(daemon.pid, signal.SIGHUP)
        # Then it says RELOADING, then READY again, and restarted only b
        wait_until(lambda: any(m.startswith("READY=1") for m in notify.collect()[before:]),
                   20, daemon.log_tail)
        after = notify.collect()[before:]
        assert next(m for m in after if m != "WATCHDOG=1").startswith("RELOADING=1")
        wait_until(lambda: "restarted: b; unchanged: a" in daemon.log_tail(), 10,
                   daemon.log_tail)
        # When systemd stops it
        daemon.terminate()
        # Then it says STOPPING and exits 0
        assert daemon.wait_exit(30) == 0
        assert notify.saw("STOPPING=1")


def test_broken_file_on_sighup_keeps_the_running_config(tmp_path):
    # Given a running daemon
    config = write_config(tmp_path, [memory_mapping("a")])
    with DaemonProcess(config, daemon_env(tmp_path / "j.jsonl"), tmp_path / "esm.log") as daemon:
        daemon.wait_ready()
        # When its file becomes invalid and it gets SIGHUP
        good = config.read_text()
        config.write_text(good.replace("batch_size: 5", "batch_size: 0"))
        os.kill(daemon.pid, signal.SIGHUP)
        # Then it logs why, keeps running the old mapping, and stays ready
        wait_until(lambda: "reload refused" in daemon.log_tail(), 20, daemon.log_tail)
        assert "batch_size" in daemon.log_tail()
        assert daemon.get("/readyz")[0] == 200
        assert [m["state"] for m in daemon.mappings()] == ["Enabled"]
        daemon.terminate()
        assert daemon.wait_exit(30) == 0


def post(port: int, path: str, token: str | None = None) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=b"", method="POST")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_admin_api_beyond_loopback_needs_the_token_and_status_shows_the_state(tmp_path):
    # Given a daemon listening on all interfaces with an auth token from the environment
    config = write_config(tmp_path, [memory_mapping("a")])
    document = yaml.safe_load(config.read_text())
    port = int(document["server"]["listen"].rpartition(":")[2])
    document["server"] = {"listen": f"0.0.0.0:{port}", "auth_token": "${ESM_TOKEN}"}
    config.write_text(yaml.safe_dump(document))
    env = daemon_env(tmp_path / "j.jsonl")
    env["ESM_TOKEN"] = "op-token-123456"
    with DaemonProcess(config, env, tmp_path / "esm.log") as daemon:
        daemon.wait_ready()
        # When a client disables the mapping without, then with the token
        assert post(port, "/mappings/a/disable") == 401
        assert post(port, "/mappings/a/disable", "op-token-123456") == 202
        # Then the mapping ends Disabled, and `esm status` shows it
        wait_until(lambda: daemon.mappings()[0]["state"] == "Disabled", 20, daemon.log_tail)
        status = run_cli("status", "--url", f"http://127.0.0.1:{port}", env=env)
        assert status.returncode == 0, status.stderr
        header, row = status.stdout.splitlines()
        assert header.startswith("NAME") and row.split()[:3] == ["a", "Disabled", "no"]
        # When it is enabled again it becomes Enabled; the token never shows in the log
        assert post(port, "/mappings/a/enable", "op-token-123456") == 202
        wait_until(lambda: daemon.mappings()[0]["state"] == "Enabled", 20, daemon.log_tail)
        time.sleep(0.2)
        assert "op-token-123456" not in daemon.log_tail(100_000)
        daemon.terminate()
        assert daemon.wait_exit(30) == 0
