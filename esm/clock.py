"""The real clock. Tests use a fake with the same three methods (`esm.interfaces.Clock`).
Also `iso_utc`, the one way an epoch time is written in events and notices."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

# The whole seconds datetime can show (years 1 to 9999).
_EARLIEST = -62_135_596_800.0
_LATEST = 253_402_300_799.0


def iso_utc(epoch_seconds: float, millis: bool = True) -> str:
    """ISO-8601 UTC, `2019-11-14T00:38:04.835Z`, or `2019-11-14T00:38:04Z` without
    milliseconds (DynamoDB, ESM-SPEC §4.5); truncated, not rounded.

    Any value is accepted: a Kafka record's timestamp and a Redis entry's id are chosen by
    the producer and may lie outside years 1-9999, where datetime raises. Such a time is
    clamped to the nearest end, so describing a batch for a notice never fails."""
    if not _EARLIEST <= epoch_seconds <= _LATEST:  # also NaN
        epoch_seconds = _LATEST if epoch_seconds > 0 else _EARLIEST
    moment = datetime.fromtimestamp(epoch_seconds, UTC)
    return moment.isoformat(timespec="milliseconds" if millis else "seconds").replace(
        "+00:00", "Z")


class SystemClock:
    """Wall and monotonic time from the OS; waits on the stop event."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        if seconds <= 0:
            return stop.is_set()
        return stop.wait(seconds)


class FakeClock:
    """A clock that moves only when told to, or when someone waits on it (no real sleeps).

    `wait` advances time by the requested amount at once, so retry backoff and batching
    windows run instantly in tests while keeping their arithmetic visible.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._mono = 1000.0
        self._lock = threading.Lock()
        self.waits: list[float] = []

    def now(self) -> float:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds
            self._mono += seconds

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        if stop.is_set():
            return True
        if seconds > 0:
            self.waits.append(seconds)
            self.advance(seconds)
        return stop.is_set()
