"""Deadlines on calls that run on the caller's own thread, and what happens when one passes.

A target that runs the function on the lane worker's thread (the in-process `python`
target, `esm.interfaces.InlineTarget`) saves two thread hand-offs per batch against running
it on a helper thread and waiting there with a timeout (tests/bench: Redis 0.57x → 0.70x of
the raw client loop). Python cannot interrupt that thread when the function overruns, so
the timeout is kept from outside: the caller arms a `Watch` before the call and settles it
after. If the deadline passes first, the watchdog thread claims the watch and runs its
`on_overrun` (which carries the batch on elsewhere, see `LaneThreads`); the caller, when
its call finally returns, finds the watch claimed and must drop the result and leave
everything of the batch alone (`TakenOver`).

Exactly one side wins a watch: a lock acquired without blocking decides it.

The watchdog sleeps until the earliest deadline, or until a watch with an earlier deadline
is armed; arming costs a set insertion and an attribute read, and waking it is needed only
when it idles or sleeps past the new deadline (never in the steady state of one timeout).
Calls usually come and go while it sleeps, so it often wakes to find no watch at all: as
long as watches were armed since its last look, it then looks again one watch-length
later rather than idling. Idling there would have every next `arm` wake it, a thread
switch per call (Redis, no-op handler: 0.9 us of CPU per record at batch 100).
"""

from __future__ import annotations

import _thread
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

_NEVER = float("inf")


class TakenOver(BaseException):
    """Raised on the thread of a call that overran after the watchdog took its work over:
    the thread must unwind without touching the batch (it is a BaseException so that the
    `except Exception` of a connector-bug handler cannot swallow it)."""


class Watch:
    """A deadline on one call; see the module docstring."""

    __slots__ = ("deadline", "on_overrun", "_claim", "_watchdog")

    def __init__(self, watchdog: Watchdog, deadline: float,
                 on_overrun: Callable[[], None]) -> None:
        self.deadline = deadline
        self.on_overrun = on_overrun
        self._claim = _thread.allocate_lock()
        self._watchdog = watchdog

    def settle(self) -> bool:
        """Called by the caller when its call returned: True if it finished in time (the
        caller goes on), False if the watchdog has taken over (the caller must not)."""
        if self._claim.acquire(False):
            self._watchdog.forget(self)
            return True
        return False

    def claim(self) -> bool:
        """The watchdog's side of `settle`."""
        return self._claim.acquire(False)


class Watchdog:
    """One thread that fires overrun watches; started on the first `arm`, stopped by
    `close` (watches armed after that are never fired: their calls run to the end)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._watches: set[Watch] = set()
        self._kick = threading.Event()
        self._wake_at = _NEVER  # when the thread will look next; read without a lock
        # Set by `arm` (no lock: a lost write costs at most one wake-up): the length of the
        # latest watch, and whether one was armed since the thread last looked.
        self._latest_seconds = 0.0
        self._armed = False
        self._lock = threading.Lock()  # only for starting the thread
        self._thread: threading.Thread | None = None
        self._closed = False

    def arm(self, seconds: float, on_overrun: Callable[[], None]) -> Watch:
        """A watch that runs `on_overrun` on the watchdog thread once `seconds` pass
        unless it is settled first. `on_overrun` must be quick and must not raise."""
        watch = Watch(self, time.monotonic() + seconds, on_overrun)
        self._watches.add(watch)
        self._latest_seconds = seconds
        self._armed = True
        if self._thread is None:
            self._start()
        if watch.deadline < self._wake_at:
            self._kick.set()
        return watch

    def forget(self, watch: Watch) -> None:
        self._watches.discard(watch)

    def close(self) -> None:
        self._closed = True
        self._kick.set()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while not self._closed:
            self._kick.clear()
            looked_at = self._wake_at = time.monotonic()  # an arm now kicks: this pass may miss it
            next_deadline = self._fire_due()
            if next_deadline == _NEVER and self._armed:  # calls are coming: see the docstring
                next_deadline = looked_at + self._latest_seconds
            self._armed = False
            self._wake_at = next_deadline
            # A watch armed after the pass above and before `_wake_at` was set did not
            # kick (it saw an earlier `_wake_at`): look once more before sleeping.
            if min((w.deadline for w in self._watches.copy()), default=_NEVER) < next_deadline:
                continue
            timeout = None if next_deadline == _NEVER else \
                max(0.0, next_deadline - time.monotonic())
            self._kick.wait(timeout)

    def _fire_due(self) -> float:
        """Fire every watch whose deadline passed; the earliest deadline left."""
        now = time.monotonic()
        earliest = _NEVER
        for watch in self._watches.copy():
            if watch.deadline > now:
                earliest = min(earliest, watch.deadline)
            elif watch.claim():
                self._watches.discard(watch)
                try:
                    watch.on_overrun()
                except Exception:  # noqa: BLE001 - the watchdog must outlive a bad callback
                    log.exception("%s: an overrun callback failed", self._name)
        return earliest
