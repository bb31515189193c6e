"""Every mapping's status, and the parts and stop event of each mapping that is running.

The daemon decides *when* a mapping starts or stops (startup, reload, the admin API,
shutdown); this module does the starting and stopping of one mapping: build its parts under
their own stop event, launch its runner, halt it (drain, settle, commit, close its
connectors, DESIGN §9). A halted mapping keeps its status, so a disabled mapping still shows
in `/mappings` and metrics (ESM-SPEC §1.1).

Not thread-safe on its own: the daemon calls it under its lock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from esm.config.types import MappingConfig
from esm.interfaces import Clock
from esm.ops.metrics import Metrics
from esm.ops.status import RUNNING_STATES, MappingStatus
from esm.protection.rate_limit import RateLimiters
from esm.runtime.assembly import MappingParts, assemble
from esm.runtime.checkpoints import InProcessCheckpoints

log = logging.getLogger(__name__)


class RunningMappings:
    """`statuses` holds every configured mapping; `parts` only the running ones."""

    def __init__(self, *, clock: Clock, metrics: Metrics, checkpoints: InProcessCheckpoints,
                 daemon_stop: threading.Event,
                 source_overrides: Mapping[str, Callable[[Any], Any]],
                 reader_options: dict[str, float] | None) -> None:
        self.statuses: dict[str, MappingStatus] = {}
        self.parts: dict[str, MappingParts] = {}
        self._clock = clock
        self._metrics = metrics
        self._checkpoints = checkpoints
        self._daemon_stop = daemon_stop
        self._source_overrides = dict(source_overrides)
        self._reader_options = reader_options
        self._stops: dict[str, threading.Event] = {}
        self._limiters = RateLimiters(clock)  # shared by the mappings of a rate_limit_group

    def status(self, mapping: MappingConfig) -> MappingStatus:
        """The mapping's status, created on first use."""
        status = self.statuses.get(mapping.name)
        if status is None:
            status = MappingStatus(mapping.name, mapping.source.type, mapping.target.type)
            self.statuses[mapping.name] = status
        return status

    def build(self, mapping: MappingConfig,
              drain_seconds: float) -> tuple[MappingParts, threading.Event]:
        """The mapping's parts and the stop event they run under; nothing starts yet.
        Raises what `esm.runtime.assembly.assemble` raises for connectors that refuse to build."""
        stop = threading.Event()
        parts = assemble(
            mapping, clock=self._clock, stop=stop,
            metrics=self._metrics.for_mapping(mapping.name), status=self.status(mapping),
            drain_seconds=drain_seconds,
            source_override=self._source_overrides.get(mapping.name),
            reader_options=self._reader_options, checkpoints=self._checkpoints,
            limiters=self._limiters,
        )
        return parts, stop

    def launch(self, parts: MappingParts, stop: threading.Event) -> None:
        """Start the runner; a mapping launched while the daemon stops is stopped at once."""
        name = parts.mapping.name
        self.parts[name] = parts
        self._stops[name] = stop
        if self._daemon_stop.is_set():
            stop.set()
        parts.runner.start()

    def halt(self, name: str, timeout_seconds: float) -> bool:
        """Stop one mapping (drain, settle, commit) and close its connectors; True if its
        runner finished within the timeout (or it was not running)."""
        parts = self.parts.pop(name, None)
        stop = self._stops.pop(name, None)
        if parts is None or stop is None:
            return True
        stop.set()
        parts.runner.join(timeout_seconds)
        drained = not parts.runner.is_alive()
        try:
            parts.close()
        except Exception as exc:  # best effort: the mapping is stopping anyway
            log.warning("mapping %s: closing connectors failed: %s", name, exc)
        return drained

    def signal_stop(self) -> None:
        """Set every running mapping's stop event, without waiting for any of them."""
        for stop in self._stops.values():
            stop.set()

    def dead(self) -> list[str]:
        """Running mappings whose runner thread ended without being asked to stop."""
        return [name for name, parts in list(self.parts.items())
                if not parts.runner.is_alive() and not self._stopping(name)]

    def not_ready(self) -> list[str]:
        """Mappings meant to run that do not run ready: not reported ready yet, or not
        launched yet (being created, updated by a reload, or enabled). Mappings disabled,
        being disabled or being deleted do not count."""
        return [name for name, status in list(self.statuses.items())
                if status.state in RUNNING_STATES
                and not (name in self.parts and status.ready)]

    def all_idle(self) -> bool:
        """True when every running reader has read everything and has no lag."""
        for parts in list(self.parts.values()):
            reader = parts.runner.reader
            status = self.statuses[parts.mapping.name]
            if reader is None or not reader.idle or status.lag not in (None, 0.0):
                return False
        return True

    def _stopping(self, name: str) -> bool:
        stop = self._stops.get(name)
        return stop is None or stop.is_set()
