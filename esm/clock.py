"""The real clock. Tests use a fake with the same three methods (`esm.interfaces.Clock`)."""

from __future__ import annotations

import threading
import time


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
