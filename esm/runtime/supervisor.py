"""Keeps one mapping's reader alive: builds a fresh source, runs a Reader until the daemon
stops, and when the reader crashes (source gone, connector bug) logs the traceback, waits
for the crashed reader's in-flight batches, backs off (1 s doubling to 60 s, jittered) and
starts again. The only place in esm that catches Exception (STYLE rule 6).

A restarted reader resumes from the broker's committed positions, so records the crashed
one had not acked are delivered again: duplicates, never losses.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

from esm.config.types import MappingConfig
from esm.errors import SourceUnavailable
from esm.filtering import Matcher
from esm.interfaces import Clock, Source
from esm.ops import status as st
from esm.ops.logs import log_context
from esm.ops.metrics import MappingMetrics
from esm.ops.status import MappingStatus
from esm.pipeline.lane_worker import LaneWorker
from esm.pipeline.reader import Reader
from esm.threads.lane_threads import LaneThreads

log = logging.getLogger(__name__)

_MAX_BACKOFF_SECONDS = 60.0
_HEALTHY_AFTER_SECONDS = 60.0


class MappingRunner(threading.Thread):
    """The supervisor thread of one mapping. Its reader's loop runs on threads of its own
    (`esm-reader-NAME`, esm.threads.relay), so that a loop thread held up in a function
    never holds up a restart or the daemon's stop."""

    def __init__(self, *, mapping: MappingConfig, build_source: Callable[[], Source],
                 build_worker: Callable[[Source, threading.Event], LaneWorker], matcher: Matcher,
                 max_in_flight: int, metrics: MappingMetrics, status: MappingStatus,
                 clock: Clock, stop: threading.Event, drain_seconds: float,
                 reader_options: dict[str, float] | None = None) -> None:
        super().__init__(name=f"esm-mapping-{mapping.name}", daemon=True)
        self.mapping = mapping
        self.build_source = build_source
        self.build_worker = build_worker
        self.matcher = matcher
        self.max_in_flight = max_in_flight
        self.metrics = metrics
        self.status = status
        self.clock = clock
        self.stop = stop
        self.drain_seconds = drain_seconds
        self.reader_options = reader_options or {}
        self.reader: Reader | None = None
        self._rng = random.Random()

    def run(self) -> None:
        with log_context(mapping=self.mapping.name):
            self._supervise()

    def _supervise(self) -> None:
        failures = 0
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                self._run_once()
            except Exception as exc:
                healthy_run = time.monotonic() - started > _HEALTHY_AFTER_SECONDS
                failures = 1 if healthy_run else failures + 1
                self._record_crash(exc, failures)
                delay = min(_MAX_BACKOFF_SECONDS, 2.0 ** (failures - 1))
                self.clock.wait(self.stop, delay * (0.5 + self._rng.random() / 2))
        self.status.update(state="Disabled", ready=False)

    def _run_once(self) -> None:
        source = self.build_source()
        pool = LaneThreads(f"esm-lane-{self.mapping.name}")
        # Lane workers of this run wait on their own event: set when the daemon stops
        # (after the reader stops polling) or when this reader crashes, so no worker keeps
        # retrying for a reader that is gone.
        run_stop = threading.Event()
        try:
            self.reader = Reader(
                mapping=self.mapping, source=source, matcher=self.matcher,
                worker=self.build_worker(source, run_stop), pool=pool,
                max_in_flight=self.max_in_flight, run_stop=run_stop,
                metrics=self.metrics, status=self.status, clock=self.clock, stop=self.stop,
                drain_seconds=self.drain_seconds, **self.reader_options,
            )
            self.reader.run()
        finally:
            # A crashed reader's workers may still be invoking: let them finish (their
            # settlements are dropped, so the records are redelivered) before a new
            # reader can receive the same records again.
            run_stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
            _close_quietly(source, self.mapping.name)

    def _record_crash(self, exc: Exception, failures: int) -> None:
        self.metrics.count("reader_restarts")
        self.metrics.count("polling_errors")
        source_failed = isinstance(exc, SourceUnavailable)
        result = st.SOURCE_FAILED if source_failed else "PROBLEM: Internal error"
        self.status.update(ready=False, last_processing_result=result,
                           last_error=f"{type(exc).__name__}: {exc}"[:500],
                           reader_restarts=self.status.reader_restarts + 1)
        if isinstance(exc, SourceUnavailable):
            log.error("mapping %s: source unavailable (restart %d): %s",
                      self.mapping.name, failures, exc)
        else:
            log.exception("mapping %s: reader crashed (restart %d)", self.mapping.name, failures)


def _close_quietly(source: Source, mapping: str) -> None:
    try:
        source.close()
    except Exception as exc:  # closing a broken client may fail too; nothing to save
        log.debug("mapping %s: closing the source failed: %s", mapping, exc)
