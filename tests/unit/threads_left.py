"""Unit tests leave no thread running behind them.

A source, keeper or reader a test starts and never stops goes on running into the tests
after it: a reader busy-polling a memory broker slowed the whole suite, and a
ThreadPoolExecutor worker still in a call keeps the interpreter from exiting, because
Python joins those at exit. So every unit test is checked (tests/unit/conftest.py): the
threads it started must be gone shortly after it ends. Objects a test helper opens for
many tests register with `close_after_test`, and are closed before that check.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol, TypeVar


class Closeable(Protocol):
    def close(self) -> None: ...


C = TypeVar("C", bound=Closeable)

# Long enough for a thread told to stop to see it on a loaded machine, and for the
# keepers' close (which joins its thread); a test that leaks one waits this long once.
GRACE_SECONDS = 5.0

_to_close: list[Closeable] = []


def close_after_test(thing: C) -> C:
    """Have `thing.close()` called when the current test ends (closing twice is fine for
    everything registered here)."""
    _to_close.append(thing)
    return thing


def close_registered() -> None:
    while _to_close:
        _to_close.pop().close()


def threads_still_running(before: set[threading.Thread]) -> list[str]:
    """The names of threads started since `before` that are still alive after the grace
    period (empty as soon as they are all gone)."""
    deadline = time.monotonic() + GRACE_SECONDS
    while True:
        left = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not left or time.monotonic() >= deadline:
            return sorted(t.name for t in left)
        time.sleep(0.01)
