"""The circuit breaker (`circuit_breaker: {failure_threshold, probe_interval_seconds}`), an
esm extension: when the target keeps failing to be reached, stop reading and probe it now
and then instead of hammering it.

- closed: every invocation goes. `failure_threshold` consecutive invoke errors (the batch
  never reached the function, ESM-SPEC §4.1; function errors do not count, the function
  answered) open it.
- open: the reader stops polling (every lane paused at the source) and the mapping shows
  state `Paused` with the reason. Lane workers still hold the batches they had; each waits
  in `admit`, and one of them at a time is let through as the probe, every
  `probe_interval_seconds`. A probe that reaches the function (success or function error)
  closes the breaker and everyone goes on; a failed probe keeps it open for another
  interval. Records already read wait in their lanes: never lost, never dead-lettered for
  the outage (the failure policy retries queue batches in place while a breaker guards
  the target, `FailurePolicy.hold_invoke_failures`).

Thread-safe; time from the injected clock, waits end on the stop event. Waiting lanes
check again at least every `MAX_WAIT_SLICE_SECONDS`, so they follow a successful probe
within that time rather than a whole interval later.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from esm.config.types import CircuitBreaker as BreakerSettings
from esm.interfaces import Clock

log = logging.getLogger(__name__)

MAX_WAIT_SLICE_SECONDS = 0.5


@dataclass(frozen=True, slots=True)
class Admission:
    """Leave to invoke once; `probe` when this invocation tests an open breaker."""

    probe: bool = False


_NORMAL = Admission()
_PROBE = Admission(probe=True)


class Breaker:
    """One mapping's circuit breaker; see the module docstring."""

    def __init__(self, settings: BreakerSettings, clock: Clock, mapping: str = "") -> None:
        self.settings = settings
        self._clock = clock
        self._mapping = mapping
        self._lock = threading.Lock()
        self._failures = 0  # consecutive invoke errors
        self._open = False
        self._probing = False
        self._next_probe_at = 0.0
        self._reason = ""
        self.probes = 0  # probes sent so far (for status and tests)

    @property
    def is_open(self) -> bool:
        return self._open

    @property
    def reason(self) -> str:
        """Why the breaker is open (empty when closed)."""
        with self._lock:
            return self._reason if self._open else ""

    def admit(self, stop: threading.Event) -> Admission | None:
        """Wait until this lane may invoke; None when `stop` was set meanwhile."""
        while True:
            with self._lock:
                if not self._open:
                    return _NORMAL
                now = self._clock.monotonic()
                if not self._probing and now >= self._next_probe_at:
                    self._probing = True
                    self.probes += 1
                    return _PROBE
                wait = self._next_probe_at - now if not self._probing else \
                    self.settings.probe_interval_seconds
            if self._clock.wait(stop, min(max(wait, 0.001), MAX_WAIT_SLICE_SECONDS)):
                return None

    def record(self, admission: Admission, invoke_failed: bool, reason: str = "") -> None:
        """What came of an admitted invocation: `invoke_failed` when it never reached the
        function (an InvokeFailure outcome)."""
        with self._lock:
            if admission.probe:
                self._probing = False
            if not invoke_failed:
                self._failures = 0
                if self._open:
                    self._open = False
                    log.info("mapping %s: circuit breaker closed: the target answered",
                             self._mapping)
                return
            self._failures += 1
            now = self._clock.monotonic()
            if admission.probe:
                self._next_probe_at = now + self.settings.probe_interval_seconds
                self._reason = self._describe(reason)
            elif not self._open and self._failures >= self.settings.failure_threshold:
                self._open = True
                self._next_probe_at = now + self.settings.probe_interval_seconds
                self._reason = self._describe(reason)
                log.warning("mapping %s: circuit breaker open: %s", self._mapping, self._reason)

    def forgo(self, admission: Admission) -> None:
        """The admitted invocation was not sent after all (the event came out too large):
        a probe slot goes to the next lane, and nothing is learnt about the target."""
        if admission.probe:
            with self._lock:
                self._probing = False

    def _describe(self, reason: str) -> str:
        return (f"circuit breaker open after {self._failures} consecutive invoke errors "
                f"(last: {reason[:300]}); probing every "
                f"{self.settings.probe_interval_seconds:g}s")
