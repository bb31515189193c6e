"""`tests/run.sh` installs every real server through `python -m tests.servers install`, which
calls each harness's `ensure_installed`; a harness without one stops the whole run."""

from __future__ import annotations

import importlib

import pytest

from tests.servers.__main__ import available


@pytest.mark.parametrize("name", available())
def test_every_server_harness_can_be_installed_ahead_of_a_run(name: str) -> None:
    module = importlib.import_module(f"tests.servers.{name}_server")
    assert callable(getattr(module, "ensure_installed", None)), \
        f"tests/servers/{name}_server.py has no ensure_installed()"


def test_free_ports_are_distinct_bindable_and_below_the_ephemeral_range() -> None:
    # Servers restart on their port; an ephemeral port could be taken meanwhile by any
    # outgoing connection (tests/servers/common.py)
    import socket

    from tests.servers.common import LOWEST_SERVER_PORT, _ephemeral_ports_start, free_port
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50
    assert all(LOWEST_SERVER_PORT <= p < _ephemeral_ports_start() for p in ports)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports[-1]))


def test_a_server_stop_that_needs_sigkill_is_noted_for_the_runs_summary(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess
    import sys
    import time

    from tests.servers import common
    ignores_term = ("import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                    "print('up', flush=True); time.sleep(30)")
    stubborn = subprocess.Popen([sys.executable, "-c", ignores_term], stdout=subprocess.PIPE)
    assert stubborn.stdout is not None and stubborn.stdout.readline() == b"up\n"
    polite = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    # (the run's own tallies stay out of it: its summary would list this test's process)
    monkeypatch.setattr(common, "STOPS", {"clean": 0})
    monkeypatch.setattr(common, "FORCED_STOPS", [])
    started = time.monotonic()
    common.stop_process(polite, timeout_seconds=5)
    common.stop_process(stubborn, timeout_seconds=0.5)
    assert stubborn.returncode == -9 and polite.returncode == -15
    assert common.STOPS["clean"] == 1
    assert common.FORCED_STOPS == [(f"{sys.executable} -c {ignores_term}", 0.5)]
    assert time.monotonic() - started < 5


def test_a_rabbitmq_failure_report_says_which_boot_began_a_new_database_and_what_a_crash_left(
        ) -> None:
    from tests.servers.rabbitmq_server import RabbitMQServer

    # Given a broker's folder as two boots and one crash leave it (no broker runs)
    server = RabbitMQServer()
    try:
        folder = server._dir
        new, found = "[ ] quorum_queue\n[ ] stream_queue\n", "[x] quorum_queue\n"
        (folder / "broker.log").write_text(
            f"t Feature flags: list of feature flags found:\n{new}banner\n"
            f"t Feature flags: list of feature flags found:\n{found}banner\n")
        (folder / "log").mkdir()
        (folder / "log" / f"{server.node}.log").write_text(
            "2026-12-06 15:11:37.094944+00:00 [info] <0.612.0> Recovering 1 queues of type "
            "rabbit_classic_queue took 4ms\n2026-12-06 15:11:37.1 [info] accepting AMQP\n")
        database = folder / "mnesia" / server.node
        database.mkdir(parents=True)
        (database / "LATEST.LOG").write_bytes(b"\x01durable q-kept\x02")
        server._proc = None
        server.kill()  # no broker PID: only copies the database aside, as after a crash
        (database / "LATEST.LOG").write_bytes(b"")
        # When the failure report is written
        summary = server.boot_summary()
        # Then it names each boot's database, the recovery line, the files, and which
        # files the crash left naming a queue
        assert summary.startswith("boots: 1 began a new database, 2 found its database\n")
        assert "Recovering 1 queues" in summary and "accepting AMQP" not in summary
        assert "database files: LATEST.LOG:0" in summary
        assert server.crash_files_mention("q-kept") == \
            "crash 1: files naming 'q-kept': LATEST.LOG:16"
        assert server.crash_files_mention("q-other") == "crash 1: files naming 'q-other': none"
    finally:
        server.cleanup()
