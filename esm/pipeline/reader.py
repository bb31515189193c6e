"""The reader: one thread per mapping that owns the source client.

It polls, filters, batches per lane, dispatches closed batches to lane workers, and applies
the settlements they send back (`InFlight`, esm.pipeline.settling; only this thread
touches the source). DESIGN §2:
- a lane has one batch in flight (per ordering-key slot when parallelization_factor > 1);
- records wait in a `LaneBuffer` between poll and dispatch; it pauses lanes at the source
  when batches queue up and bounds the whole buffer (memory is bounded by configuration,
  never by backlog);
- acks go through an `AckBook`: stream lanes commit only a finished, contiguous prefix
  (filtered records included, checklist 32); queue acks of a turn go in one call;
- while the mapping's circuit breaker is open it holds its reads and sends one batch at a
  time to probe with (`TargetGuard`);
- tumbling windows (`WindowBook`, shared with the lane workers' `WindowInvoker`): a lane's
  saved window is restored when the lane is assigned, an ended window gets its final
  invoke queued behind the lane's buffered records, and each window document is saved
  before the checkpoint of the records it covers moves (esm.windows);
- a batch runs on a lane thread, or on the reader's own thread when its function is quick
  and holds the GIL (`Dispatcher`, esm.pipeline.dispatch); the loop then runs on a relay
  (esm.threads.relay), which carries it on on a new thread if such a batch holds it up;
- on stop it polls no more, waits for in-flight batches within the drain budget, applies
  their settlements, and returns; undispatched records stay unacked (redelivered later).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Collection, Sequence
from concurrent.futures import Executor

from esm.config.types import MappingConfig
from esm.filtering import Matcher
from esm.interfaces import Clock, Source
from esm.ops.metrics import MappingMetrics
from esm.ops.status import MappingStatus
from esm.pipeline.acks import AckBook
from esm.pipeline.batching import BatchLimits
from esm.pipeline.dispatch import Dispatcher
from esm.pipeline.intake import Intake
from esm.pipeline.lane_buffer import LaneBuffer
from esm.pipeline.lane_worker import LaneWorker
from esm.pipeline.reader_checks import oldest_age, report, warn_if_visibility_below_timeout
from esm.pipeline.settling import InFlight
from esm.pipeline.target_guard import HELD_WAIT_SECONDS, TargetGuard
from esm.records import Record
from esm.threads.lane_threads import LaneThreads
from esm.threads.relay import Relay
from esm.windows.book import WindowBook

log = logging.getLogger(__name__)

# Read-ahead floor and byte ceiling of a mapping's buffer (records polled, not yet sent).
MIN_BUFFERED_RECORDS = 1000
MAX_BUFFERED_BYTES = 64 * 1024 * 1024


class Reader:
    """Runs one mapping's read loop until `stop` is set; see the module docstring."""

    def __init__(self, *, mapping: MappingConfig, source: Source, matcher: Matcher,
                 worker: LaneWorker, pool: Executor | LaneThreads, max_in_flight: int,
                 metrics: MappingMetrics, status: MappingStatus, clock: Clock,
                 stop: threading.Event, run_stop: threading.Event | None = None,
                 drain_seconds: float = 30.0,
                 lag_interval_seconds: float = 5.0, idle_poll_seconds: float = 1.0,
                 min_buffered_records: float = MIN_BUFFERED_RECORDS) -> None:
        self.mapping = mapping
        self.source = source
        self.matcher = matcher
        self.worker = worker
        self._relay = Relay(f"esm-reader-{mapping.name}",
                            on_hand_on=lambda: metrics.count("reader_hand_ons"))
        self.dispatcher = Dispatcher(mapping_name=mapping.name, worker=worker, pool=pool,
                                     relay=self._relay, metrics=metrics)
        self.max_in_flight = max_in_flight
        self.metrics = metrics
        self.status = status
        self.clock = clock
        self.stop = stop
        self.run_stop = run_stop or threading.Event()
        self.drain_seconds = drain_seconds
        self.lag_interval_seconds = lag_interval_seconds
        self.idle_poll_seconds = idle_poll_seconds
        self.stream = source.traits.family == "stream"
        self.limits = BatchLimits(mapping.batch_size, mapping.maximum_batching_window_in_seconds,
                                  source.event_overhead_bytes())
        # A windowed mapping's workers invoke through a WindowInvoker, whose book this shares.
        self.windows: WindowBook | None = getattr(worker.invoker, "book", None)
        self.buffer = LaneBuffer(source, self.limits,
                                 parallelization_factor=mapping.parallelization_factor,
                                 max_in_flight=max_in_flight,
                                 min_records=int(min_buffered_records),
                                 max_bytes=MAX_BUFFERED_BYTES,
                                 window_seconds=mapping.tumbling_window_in_seconds)
        self.acks = AckBook(source, metrics, stream=self.stream)
        self.intake = Intake(mapping_name=mapping.name, matcher=matcher, buffer=self.buffer,
                             acks=self.acks, metrics=metrics, stream=self.stream)
        self.in_flight = InFlight(source=source, buffer=self.buffer, acks=self.acks,
                                  windows=self.windows, metrics=metrics,
                                  dispatcher=self.dispatcher)
        self.guard = TargetGuard(worker.breaker, metrics, status)
        self._next_lag_at = 0.0
        self.idle = False

    @property
    def max_buffered_records(self) -> int:
        return self.buffer.max_records

    # -- the loop -------------------------------------------------------------------------

    def run(self) -> None:
        self.source.open(self)
        warn_if_visibility_below_timeout(self.mapping, self.source, self.status)
        self.status.update(ready=True, state="Enabled")
        self.metrics.up.set(1)
        try:
            self._relay.run(self._turn)
        finally:
            self.metrics.up.set(0)
            self.status.update(ready=False)
            self.run_stop.set()  # workers finish their current invocation, start no retries
        self.drain()  # only on a clean stop: a crashed reader's source may be unusable

    def _turn(self) -> bool:
        if self.stop.is_set():
            return False
        self.step()
        return True

    def step(self) -> None:
        """One turn: settle, close due batches, dispatch (and run those placed here), then
        poll (or wait)."""
        self.in_flight.apply(0)
        self.guard.follow()
        self._queue_due_finals()
        self.buffer.close_due(self.clock.monotonic())
        self._dispatch(here=self.dispatcher.placement.on_reader())
        # The batches placed here run once the turn's changes so far are complete: if one
        # holds this thread up, the loop goes on on another thread from the top of a turn
        # and this thread does nothing more with it. Their settlements are applied at the
        # next turn's start: until then they count as in flight, so the poll below takes
        # only what has arrived, as while a lane thread runs a batch.
        self.dispatcher.run_here()
        self._report()
        if self.stop.is_set():
            return
        hold = self.guard.holds_reads(self.in_flight.count, self.buffer.records)
        outstanding = self.acks.outstanding() if self.stream else 0
        full = self.buffer.apply_limit(outstanding, hold)
        if full and self.in_flight.apply(self._short_wait()):
            return  # a lane finished while waiting: dispatch its next batch before polling
        self._poll()

    def _poll(self) -> None:
        if self.in_flight.count:
            # Barely block in the source: a settling batch must wake the reader at once,
            # and only the settlement queue can do that (no client has a portable wakeup).
            # Not at all when a settlement is already there (a batch run on this thread):
            # with every lane paused, the source would wait out the whole timeout.
            timeout = 0.0 if self.in_flight.queued() else 0.001
        elif self.guard.held:
            timeout = HELD_WAIT_SECONDS  # every lane is paused: nothing is due but a probe
        elif self.buffer.records:
            timeout = min(self.idle_poll_seconds, self._until_next_deadline())
        else:
            timeout = self.idle_poll_seconds
        room = max(1, self.max_buffered_records - self.buffer.records)
        started = time.monotonic()
        records = self.source.poll(room, timeout)
        self.idle = not records and not self.in_flight.count and not self.buffer.records
        if records:
            self.ingest(records)
            return
        if self.in_flight.count:
            self.in_flight.apply(self._short_wait())
            return
        left = timeout - (time.monotonic() - started)
        if left > 0.005:  # the source returned early: wait here, not in a busy loop
            self.in_flight.apply(left)

    def _short_wait(self) -> float:
        if self.guard.held:  # due batches wait for the breaker, not for their window
            return HELD_WAIT_SECONDS
        return min(0.05, self._until_next_deadline())

    def _until_next_deadline(self) -> float:
        return self.buffer.until_next_deadline(self.clock.monotonic())

    # -- ingest: filter and batch (esm.pipeline.intake) -----------------------------------

    def ingest(self, records: Sequence[Record]) -> None:
        self.intake.ingest(records, self.clock.monotonic())

    # -- dispatch and settle ----------------------------------------------------------------

    def _dispatch(self, here: bool = False) -> None:
        for lane in self.buffer.dispatchable():
            if self.in_flight.count >= self.guard.batches_allowed(self.max_in_flight):
                self.buffer.requeue(lane)
                return
            batch = self.buffer.take(lane)
            self.in_flight.sent(lane, batch)
            if batch.records:
                self.metrics.iterator_age.set(
                    max(0.0, self.clock.now() - batch.records[-1].timestamp))
            self.dispatcher.send(lane, batch, here)

    # -- lane ownership (LaneListener) ------------------------------------------------------

    def lanes_assigned(self, lanes: Collection[str]) -> None:
        self.buffer.assigned(lanes)
        if self.windows is not None:
            self.windows.restore_from(self.source, lanes)
        log.info("mapping %s: lanes assigned: %s", self.mapping.name, ", ".join(sorted(lanes)))

    def lane_ending(self, lane: str) -> None:
        """Resharding closes a tumbling window (ESM-SPEC §2.5): run the lane's final
        invoke now, while the lane is still owned (its closed window is saved), within the
        drain budget."""
        if self.windows is None or not self.windows.end_lane(lane):
            return
        deadline = time.monotonic() + self.drain_seconds
        while self.windows.window(lane) is not None and time.monotonic() < deadline \
                and not self.stop.is_set():
            self._settle_step()

    def _settle_step(self) -> None:
        """Queue due finals, dispatch and apply settlements, without polling the source."""
        self.in_flight.apply(0)
        self._queue_due_finals()
        self._dispatch()
        self.in_flight.apply(0.05)

    def _queue_due_finals(self) -> None:
        if self.windows is not None:
            for name in self.windows.due(self.clock.now()):
                self.buffer.queue_final(name)

    def lanes_revoked(self, lanes: Collection[str]) -> None:
        """Settle in-flight batches of `lanes` (within the drain budget), then forget them."""
        revoked = self.buffer.revoke(lanes)
        deadline = time.monotonic() + self.drain_seconds
        while any(lane.busy for lane in revoked) and time.monotonic() < deadline:
            self.in_flight.apply(0.05)
        self.buffer.forget(revoked)
        self.acks.forget(lanes)
        if self.windows is not None:
            self.windows.forget(list(lanes))
        log.info("mapping %s: lanes revoked: %s", self.mapping.name, ", ".join(sorted(lanes)))

    # -- stop and report ------------------------------------------------------------------

    def drain(self) -> None:
        """Wait for in-flight batches (within the budget) and apply their settlements."""
        deadline = time.monotonic() + self.drain_seconds
        while self.in_flight.count > 0 and time.monotonic() < deadline:
            self.in_flight.apply(0.05)
        if self.in_flight.count:
            log.warning("mapping %s: %d batch(es) still in flight after the %.0fs drain budget;"
                        " their records will be delivered again", self.mapping.name,
                        self.in_flight.count, self.drain_seconds)
        if not self.stream:
            self.acks.flush()
            self._release_undispatched()

    def _release_undispatched(self) -> None:
        """Queue family: hand buffered, never-dispatched records back at once."""
        records = self.buffer.take_all()
        if records:
            try:
                self.source.release(records, 0.0)
            except Exception as exc:  # they come back after the visibility timeout anyway
                log.warning("mapping %s: could not release %d buffered record(s): %s",
                            self.mapping.name, len(records), exc)

    def _report(self) -> None:
        now = self.clock.monotonic()
        if now < self._next_lag_at:
            return
        self._next_lag_at = now + self.lag_interval_seconds
        age = oldest_age(self.clock.now(), (self.buffer.oldest_timestamp(),
                                            *self.in_flight.first_timestamps.values()))
        report(self.mapping, self.source, self.metrics, self.status, age_seconds=age,
               in_flight=self.in_flight.count, buffered_records=self.buffer.records,
               lanes=len(self.buffer.lanes), paused_lanes=self.buffer.paused_lanes(),
               outstanding_records=self.acks.outstanding())
