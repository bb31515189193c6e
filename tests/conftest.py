"""The run's summary says whether a test server had to be SIGKILLed at a stop
(tests/servers/common.py, stop_process): such a stop can lose the server's last writes."""

from __future__ import annotations

from typing import Any


def pytest_terminal_summary(terminalreporter: Any) -> None:
    from tests.servers.common import FORCED_STOPS, STOPS
    if not (STOPS["clean"] or FORCED_STOPS):
        return
    write = terminalreporter.write_line
    write(f"test servers: {STOPS['clean']} stopped on SIGTERM, {len(FORCED_STOPS)} "
          "SIGKILLed after their SIGTERM timed out")
    for command, seconds in FORCED_STOPS:
        write(f"  SIGKILLed after {seconds:g} s: {command}")
