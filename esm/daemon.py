"""The daemon: builds every enabled mapping, runs their readers, serves the admin HTTP
endpoints, and shuts down cleanly.

SIGTERM/SIGINT: stop polling, let in-flight invocations finish, settle and commit, exit 0
within `shutdown_timeout_seconds` (DESIGN §9). One `threading.Event` stops everything.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry

from esm.assembly import MappingParts, assemble
from esm.clock import SystemClock
from esm.config_types import Config
from esm.interfaces import Clock
from esm.metrics import Metrics
from esm.server import AdminServer
from esm.status import MappingStatus

log = logging.getLogger(__name__)


class Daemon:
    """Runs a Config. `start()` then `wait()`, or `run()` to do both with signal handling."""

    def __init__(self, config: Config, *, clock: Clock | None = None,
                 stop: threading.Event | None = None, registry: CollectorRegistry | None = None,
                 source_overrides: Mapping[str, Callable[[Any], Any]] | None = None,
                 reader_options: dict[str, float] | None = None) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.stop = stop or threading.Event()
        self.metrics = Metrics(registry)
        self.registry = self.metrics.registry
        self.statuses: dict[str, MappingStatus] = {}
        self.parts: dict[str, MappingParts] = {}
        self.server: AdminServer | None = None
        self._source_overrides = dict(source_overrides or {})
        self._reader_options = reader_options

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Build and start every mapping and the HTTP server; raises on bad connectors."""
        for mapping in self.config.mappings:
            status = MappingStatus(mapping.name, mapping.source.type, mapping.target.type)
            self.statuses[mapping.name] = status
            if not mapping.enabled:
                status.update(state="Disabled")
                continue
            self.parts[mapping.name] = assemble(
                mapping, clock=self.clock, stop=self.stop,
                metrics=self.metrics.for_mapping(mapping.name), status=status,
                drain_seconds=self.config.shutdown_timeout_seconds,
                source_override=self._source_overrides.get(mapping.name),
                reader_options=self._reader_options,
            )
        if self.config.server.enabled:
            self.server = AdminServer(self.config.server.listen, self)
            self.server.start()
        for parts in self.parts.values():
            parts.runner.start()
        log.info("esm started with %d mapping(s): %s", len(self.parts), ", ".join(self.parts))

    def request_stop(self) -> None:
        self.stop.set()

    def shutdown(self) -> bool:
        """Stop everything; True if every mapping drained within the budget."""
        self.stop.set()
        deadline = time.monotonic() + self.config.shutdown_timeout_seconds + 5
        clean = True
        for parts in self.parts.values():
            parts.runner.join(max(0.0, deadline - time.monotonic()))
            clean = clean and not parts.runner.is_alive()
        for parts in self.parts.values():
            try:
                parts.close()
            except Exception as exc:  # best effort at exit
                log.warning("mapping %s: closing connectors failed: %s", parts.mapping.name, exc)
        if self.server is not None:
            self.server.close()
        log.info("esm stopped%s", "" if clean else " (some mappings did not drain in time)")
        return clean

    def run(self) -> int:
        """Start, wait for SIGTERM/SIGINT, shut down. Exit code 0 on a clean stop."""
        def on_signal(signum: int, _frame: object) -> None:
            log.info("received %s: draining", signal.Signals(signum).name)
            self.stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        self.start()
        while not self.stop.wait(1.0):
            pass
        return 0 if self.shutdown() else 1

    def run_until_idle(self, timeout_seconds: float, settle_seconds: float = 0.3) -> bool:
        """Run until every mapping has read everything and settled it (the demo and tests).
        True if that happened within `timeout_seconds`."""
        deadline = time.monotonic() + timeout_seconds
        idle_since: float | None = None
        while time.monotonic() < deadline:
            if self._all_idle():
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since >= settle_seconds:
                    return True
            else:
                idle_since = None
            time.sleep(0.05)
        return False

    def _all_idle(self) -> bool:
        for parts in self.parts.values():
            reader = parts.runner.reader
            status = self.statuses[parts.mapping.name]
            if reader is None or not reader.idle or status.lag not in (None, 0.0):
                return False
        return True

    # -- what the HTTP server asks ----------------------------------------------------------

    def mapping_snapshots(self) -> list[dict[str, Any]]:
        return [status.snapshot() for status in self.statuses.values()]

    def healthy(self) -> tuple[bool, str]:
        dead = [name for name, p in self.parts.items()
                if not p.runner.is_alive() and not self.stop.is_set()]
        return (not dead, f"reader thread not running: {', '.join(dead)}" if dead else "ok")

    def ready(self) -> tuple[bool, str]:
        waiting = [name for name in self.parts if not self.statuses[name].ready]
        return (not waiting, f"not ready: {', '.join(waiting)}" if waiting else "ok")
