"""sd_notify over a unix datagram socket, the watchdog pinger, and the daemon's READY /
RELOADING / STOPPING messages (esm.runtime.systemd)."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

from esm.config.loading import load_config
from esm.runtime.daemon import Daemon
from esm.runtime.systemd import SystemdNotifier, WatchdogPinger


class FakeNotifySocket:
    """A bound AF_UNIX datagram socket, as systemd's NOTIFY_SOCKET is."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.05)

    def messages(self, wait_seconds: float = 0.3) -> list[str]:
        out: list[str] = []
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline:
            try:
                out.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue
        return out

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path):
    fake = FakeNotifySocket(tmp_path / "notify.sock")
    yield fake
    fake.close()


def test_notifier_sends_ready_with_status_as_one_datagram(notify_socket):
    notifier = SystemdNotifier(notify_socket.path)
    assert notifier.ready("running 2 mapping(s)") is True
    assert notify_socket.messages() == ["READY=1\nSTATUS=running 2 mapping(s)"]


def test_notifier_without_socket_does_nothing_and_reports_it():
    notifier = SystemdNotifier(None)
    assert (notifier.enabled, notifier.ready(), notifier.watchdog()) == (False, False, False)


def test_notifier_to_a_missing_socket_logs_and_does_not_raise(tmp_path, caplog):
    notifier = SystemdNotifier(str(tmp_path / "gone.sock"))
    assert notifier.stopping() is False
    assert "systemd notify" in caplog.text


def test_from_env_reads_socket_and_watchdog_interval_as_half_the_timeout():
    notifier = SystemdNotifier.from_env({"NOTIFY_SOCKET": "@esm", "WATCHDOG_USEC": "4000000",
                                         "WATCHDOG_PID": str(os.getpid())})
    assert notifier.socket_path == "@esm"
    assert notifier.watchdog_interval_seconds == 2.0


def test_from_env_ignores_a_watchdog_meant_for_another_process():
    notifier = SystemdNotifier.from_env({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "4000000",
                                         "WATCHDOG_PID": str(os.getpid() + 1)})
    assert notifier.watchdog_interval_seconds is None


def test_watchdog_pings_only_while_healthy(notify_socket):
    # Given a pinger whose health flips to false
    healthy = threading.Event()
    healthy.set()
    stop = threading.Event()
    pinger = WatchdogPinger(SystemdNotifier(notify_socket.path), healthy.is_set, stop, 0.02)
    pinger.start()
    pings = notify_socket.messages(0.2)
    # When the daemon becomes unhealthy
    healthy.clear()
    time.sleep(0.05)
    notify_socket.messages(0.05)  # drain anything sent before the flip was seen
    after = notify_socket.messages(0.2)
    stop.set()
    pinger.join(2)
    # Then it pinged while healthy and stopped pinging after
    assert pings and set(pings) == {"WATCHDOG=1"}
    assert after == [] and pinger.skipped > 0


def test_daemon_sends_ready_watchdog_reloading_and_stopping(tmp_path, notify_socket):
    # Given a daemon with a notify socket and a 0.1 s watchdog interval
    config_path = tmp_path / "esm.yaml"
    config_path.write_text("""
mappings:
  - name: a
    source: {type: memory, records: ['{"id": 1}']}
    target: {type: python, handler: "esm.demo.handlers:handle"}
server: {enabled: false}
""")
    config = load_config([str(config_path)], {})
    daemon = Daemon(config, notifier=SystemdNotifier(notify_socket.path, 200_000),
                    config_loader=lambda: load_config([str(config_path)], {}))
    # When it starts, reloads and shuts down
    daemon.start()
    started = notify_socket.messages(0.4)
    daemon.reload()
    reloaded = notify_socket.messages(0.1)
    assert daemon.shutdown()
    stopped = notify_socket.messages(0.2)
    # Then systemd heard READY, watchdog pings, RELOADING then READY, and STOPPING
    assert started[0].startswith("READY=1\n") and "WATCHDOG=1" in started
    reloads = [m for m in reloaded if m != "WATCHDOG=1"]
    assert reloads[0].startswith("RELOADING=1") and reloads[1].startswith("READY=1")
    assert any(m.startswith("STOPPING=1") for m in stopped)
