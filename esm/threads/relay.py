"""A loop that runs on one thread at a time and goes on on a fresh thread when the thread
running it is held up in a call of its own (the reader's loop, `esm.pipeline.reader`).

Why: a batch whose function is quick and holds the GIL runs fastest on the reader's own
thread. Handing it to a lane thread and its settlement back costs two thread switches and
the GIL passing between the two threads several times per batch (tests/bench, no-op
handler, batch 100: Redis 0.65x -> about 1.0x of the raw client loop, Kafka 79k -> 104k
records/s). But the reader must never wait on a function: it keeps the other lanes
settling, reads, follows rebalances and stops on time. So such a call goes under a hold
limit (`call`): if it runs past it, the watchdog starts a new thread that takes the loop on
from the top of its next turn, and the held thread, once its call returns, unwinds out of
the loop (`HandedOn`) without touching the loop's state again.

One thread at a time runs the loop: a turn makes such a call as the last thing it does
with the loop's state, the new thread starts only once the watchdog has claimed the call's
watch, and the held thread learns it lost the loop from that same claim (exactly one side
wins it).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from esm.threads.overruns import Watchdog

log = logging.getLogger(__name__)

# How long a call may hold the loop's thread before the loop goes on without it. Short
# enough that nobody notices the pause, long enough that a call that usually returns
# within a few milliseconds (esm only makes such calls on the loop's thread) rarely
# needs a new thread.
HOLD_SECONDS = 0.05


class HandedOn(BaseException):
    """Raised on a thread whose loop went on on another thread while it was held up in a
    call: it must unwind out of the loop without touching the loop's state (a
    BaseException, so that no `except Exception` on the way swallows it)."""


class Relay:
    """Runs one loop; see the module docstring."""

    def __init__(self, name: str, hold_seconds: float = HOLD_SECONDS,
                 on_hand_on: Callable[[], None] = lambda: None) -> None:
        self._name = name
        self._hold_seconds = hold_seconds
        self._on_hand_on = on_hand_on  # told on the watchdog's thread, before the new thread
        self._watchdog = Watchdog(f"{name}-hold")
        self._turn: Callable[[], bool] | None = None
        self._ended = threading.Event()
        self._error: BaseException | None = None
        self.threads_started = 0  # the first, and one per hand-on

    def run(self, turn: Callable[[], bool]) -> None:
        """Call `turn()` until it returns False or raises, on a thread of the relay's own;
        return when the loop ended (on whichever thread ran it last), raising what the last
        turn raised."""
        self._turn = turn
        try:
            self._start()
            self._ended.wait()
        finally:
            self._watchdog.close()  # a call still held up now runs on to its end
        if self._error is not None:
            raise self._error

    def call(self, fn: Callable[..., None], *args: Any) -> None:
        """Run `fn(*args)` on this thread, which runs the loop. If it holds the thread
        past the hold limit, the loop goes on on a new thread, and this raises `HandedOn`
        once `fn` returns. Outside `run` (a test driving turns by hand) it just calls."""
        if self._turn is None:
            fn(*args)
            return
        watch = self._watchdog.arm(self._hold_seconds, self._hand_on)
        try:
            fn(*args)
        except BaseException:
            if watch.settle():
                raise
            # Nobody else can take it: the loop has gone on without this thread.
            log.exception("%s: a call raised after the loop went on without it", self._name)
            raise HandedOn from None
        if not watch.settle():
            raise HandedOn

    def _hand_on(self) -> None:
        try:
            self._on_hand_on()
        finally:
            self._start()

    def _start(self) -> None:
        """A thread for the loop: at `run`, or on the watchdog once a call held it up."""
        self.threads_started += 1
        try:
            threading.Thread(target=self._loop, name=self._name, daemon=True).start()
        except RuntimeError as exc:  # no thread to be had: the loop ends, `run` raises
            self._end(exc)

    def _loop(self) -> None:
        turn = self._turn
        assert turn is not None
        try:
            while turn():
                pass
        except HandedOn:
            return  # the loop is another thread's now
        except BaseException as exc:  # noqa: BLE001 - handed to `run`'s caller
            self._end(exc)
            return
        self._end(None)

    def _end(self, error: BaseException | None) -> None:
        self._error = error
        self._ended.set()
