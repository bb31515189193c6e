"""A daemon thread that calls one function at a fixed interval until closed.

The keepers (connectors/sqs/visibility.py, connectors/redis/keeper.py) run on one: if their
thread died, held messages would go back to the broker while still held, so an exception
in a tick is logged and the next tick comes as usual.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Ticker:
    """Calls `tick()` every `interval_seconds` on its own thread, from `start()` to `close()`.

    Paced by its own event, not a mapping's stop: batches still finishing while a mapping
    stops keep what they hold until the source closes."""

    def __init__(self, name: str, interval_seconds: float, tick: Callable[[], object]) -> None:
        self._name = name
        self._interval = interval_seconds
        self._tick = tick
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop; waits (up to 5 s) for a tick in progress, so none runs after this."""
        self._closed.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._closed.wait(self._interval):
            try:
                self._tick()
            except Exception:  # noqa: BLE001 - see the module docstring
                log.exception("%s: a tick failed", self._name)
