"""The reader: one thread per mapping that owns the source client.

It polls, filters, batches per lane, dispatches closed batches to lane workers, and applies
the settlements they send back (only this thread touches the source). DESIGN §2:
- a lane has one batch in flight (per ordering-key slot when parallelization_factor > 1);
- records wait in a `LaneBuffer` between poll and dispatch; it pauses lanes at the source
  when batches queue up and bounds the whole buffer (memory is bounded by configuration,
  never by backlog);
- stream family acks go through a `LaneLedger`, so only a finished, contiguous prefix of a
  lane is ever committed (filtered records included, checklist 32);
- on stop it polls no more, waits for in-flight batches within the drain budget, applies
  their settlements, and returns; undispatched records stay unacked (redelivered later).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Collection, Sequence
from concurrent.futures import Executor
from itertools import compress, groupby
from operator import attrgetter

from esm.batching import BatchLimits
from esm.config_types import MappingConfig
from esm.filtering import MATCH_ALL, Matcher
from esm.interfaces import Clock, Source
from esm.lane_buffer import Lane, LaneBuffer
from esm.lane_worker import LaneWorker
from esm.metrics import MappingMetrics
from esm.positions import LaneLedger
from esm.records import Batch, Record, Settlement
from esm.status import MappingStatus

log = logging.getLogger(__name__)

# Read-ahead floor and byte ceiling of a mapping's buffer (records polled, not yet sent).
MIN_BUFFERED_RECORDS = 1000
MAX_BUFFERED_BYTES = 64 * 1024 * 1024

_lane_of = attrgetter("lane")


class Reader:
    """Runs one mapping's read loop until `stop` is set; see the module docstring."""

    def __init__(self, *, mapping: MappingConfig, source: Source, matcher: Matcher,
                 worker: LaneWorker, pool: Executor, max_in_flight: int,
                 metrics: MappingMetrics, status: MappingStatus, clock: Clock,
                 stop: threading.Event, run_stop: threading.Event | None = None,
                 drain_seconds: float = 30.0,
                 lag_interval_seconds: float = 5.0, idle_poll_seconds: float = 1.0,
                 min_buffered_records: float = MIN_BUFFERED_RECORDS) -> None:
        self.mapping = mapping
        self.source = source
        self.matcher = matcher
        self.worker = worker
        self.pool = pool
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
        self.min_buffered_records = int(min_buffered_records)
        self.max_buffered_records = self._buffer_bound(lanes=0)
        self.buffer = LaneBuffer(source, self.limits,
                                 parallelization_factor=mapping.parallelization_factor,
                                 max_records=self.max_buffered_records,
                                 max_bytes=MAX_BUFFERED_BYTES)
        self._ledgers: dict[str, LaneLedger] = {}
        self._settlements: queue.SimpleQueue[tuple[Lane, Settlement]] = queue.SimpleQueue()
        self._queue_acks: list[Record] = []  # queue family: acks not yet sent
        self._in_flight = 0
        self._next_lag_at = 0.0
        self._crashed: BaseException | None = None
        self.idle = False

    def _buffer_bound(self, lanes: int) -> int:
        """Records the buffer may hold: enough for every batch that can run at once to
        have one waiting behind it, and never so little that small batches starve the
        source of read-ahead; bytes cap the worst case. At most one batch per lane (per
        key slot) runs, so with few lanes fewer than `max_in_flight` can: reading further
        ahead only holds records longer, and records decoded long before they are
        invoked have left the CPU cache (measured with bench_redis: one stream, 16
        workers, a 1,700-record buffer cost ~15% more CPU per record than 1,000).
        `lanes` 0: not known (lanes discovered as records come, e.g. FIFO groups)."""
        batch = self.mapping.batch_size
        runnable = self.max_in_flight
        if lanes:
            runnable = min(runnable, lanes * self.mapping.parallelization_factor)
        return max(batch * (runnable + 1), self.min_buffered_records)

    def _rebound_buffer(self) -> None:
        self.max_buffered_records = self._buffer_bound(self.buffer.assigned_lanes())
        self.buffer.max_records = self.max_buffered_records

    # -- the loop -------------------------------------------------------------------------

    def run(self) -> None:
        self.source.open(self)
        self._check_visibility_timeout()
        self.status.update(ready=True, state="Enabled")
        self.metrics.up.set(1)
        try:
            while not self.stop.is_set():
                self.step()
        finally:
            self.metrics.up.set(0)
            self.status.update(ready=False)
            self.run_stop.set()  # workers finish their current invocation, start no retries
        self.drain()  # only on a clean stop: a crashed reader's source may be unusable

    def _check_visibility_timeout(self) -> None:
        """Queue sources learn their visibility timeout from the broker at open (SQS queue
        attribute). A target timeout above it lets a slow invocation's records be delivered
        to another consumer while still in flight: AWS refuses such a mapping (ESM-SPEC
        §1.2, checklist 40); esm warns, since the queue may be shared with other readers."""
        visibility = getattr(self.source, "visibility_timeout_seconds", None)
        timeout = self.mapping.target_timeout_seconds
        if self.stream or not isinstance(visibility, (int, float)) or visibility >= timeout:
            return
        log.warning("mapping %s: the queue's visibility timeout (%ss) is shorter than the "
                    "target's timeout_seconds (%ss): records of a slow invocation can be "
                    "delivered twice; raise the visibility timeout to at least %ss (AWS "
                    "recommends 6 x the function timeout)", self.mapping.name, visibility,
                    timeout, timeout)
        self.status.update(last_error=f"visibility timeout {visibility}s < target timeout "
                                      f"{timeout}s")

    def step(self) -> None:
        """One turn: settle, close due batches, dispatch, then poll (or wait)."""
        self.apply_settlements(0)
        self.buffer.close_due(self.clock.monotonic())
        self._dispatch()
        self._report()
        if self.stop.is_set():
            return
        if self.buffer.apply_limit() and self.apply_settlements(self._short_wait()):
            return  # a lane finished while waiting: dispatch its next batch before polling
        self._poll()

    def _poll(self) -> None:
        if self._in_flight:
            # Barely block in the source: a settling batch must wake the reader at once,
            # and only the settlement queue can do that (no client has a portable wakeup).
            timeout = 0.001
        elif self.buffer.records:
            timeout = min(self.idle_poll_seconds, self._until_next_deadline())
        else:
            timeout = self.idle_poll_seconds
        room = max(1, self.max_buffered_records - self.buffer.records)
        started = time.monotonic()
        records = self.source.poll(room, timeout)
        self.idle = not records and not self._in_flight and not self.buffer.records
        if records:
            self.ingest(records)
            return
        if self._in_flight:
            self.apply_settlements(self._short_wait())
            return
        left = timeout - (time.monotonic() - started)
        if left > 0.005:  # the source returned early: wait here, not in a busy loop
            self.apply_settlements(left)

    def _short_wait(self) -> float:
        return min(0.05, self._until_next_deadline())

    def _until_next_deadline(self) -> float:
        return self.buffer.until_next_deadline(self.clock.monotonic())

    # -- ingest: filter and batch -----------------------------------------------------------

    def ingest(self, records: Sequence[Record]) -> None:
        """Filter a poll's records, track them (stream family) and buffer the matches.

        Performance: this runs for every record read, so it works on the whole poll at
        once: one pass of the matcher over the views, lane runs tracked and buffered with
        list operations (`LaneLedger.track_run`, `LaneBuffer.add_all`) instead of several
        Python calls per record."""
        self.metrics.count("polled", len(records))
        now = self.clock.monotonic()
        if self.matcher is MATCH_ALL:
            matched: Sequence[Record] = records
            filtered: list[Record] = []
        else:
            flags = self._match_all(records)
            matched = list(compress(records, flags))
            filtered = [r for r, ok in zip(records, flags, strict=True) if not ok]
        if self.stream:
            rejected = {id(r) for r in filtered}
            for lane, run in groupby(records, _lane_of):
                self._ledger(lane).track_run(list(run), rejected)
        self.buffer.add_all(matched, now)
        if filtered:
            self.metrics.count("filtered_out", len(filtered))
            self._ack_filtered(filtered)

    def _match_all(self, records: Sequence[Record]) -> list[bool]:
        views = [view if type(view := r.filter_view if r.filter_view is not None
                              else r.payload) is dict else dict(view)
                 for r in records]  # a source's lazy Mapping view: the matcher reads dicts
        try:
            return list(map(self.matcher.matches, views))
        except Exception:  # noqa: BLE001 - find the record it raised on, one by one
            return [self._matches(r) for r in records]

    def _matches(self, record: Record) -> bool:
        if self.matcher is MATCH_ALL:
            return True
        view = record.filter_view if record.filter_view is not None else record.payload
        if type(view) is not dict:
            view = dict(view)  # a source's lazy Mapping view: the matcher reads plain dicts
        try:
            return bool(self.matcher.matches(view))
        except Exception:  # a matcher bug must not drop records: deliver them
            log.exception("mapping %s: filter raised on record %s; delivering it",
                          self.mapping.name, record.item_id)
            return True

    def _ack_filtered(self, filtered: list[Record]) -> None:
        if not self.stream:
            # Sent with the acks of the next settlements (one XACK / DeleteMessageBatch
            # round for both), at the latest at the start of the next turn.
            self._queue_acks.extend(filtered)
            return
        for lane in {r.lane for r in filtered}:
            ready = self._ledgers[lane].pop_finished()
            if ready:
                self.source.ack(ready)
                self.metrics.count("committed", len(ready))

    def _ledger(self, lane: str) -> LaneLedger:
        ledger = self._ledgers.get(lane)
        if ledger is None:
            ledger = self._ledgers[lane] = LaneLedger()
        return ledger

    # -- dispatch and settle ----------------------------------------------------------------

    def _dispatch(self) -> None:
        for lane in self.buffer.dispatchable():
            if self._in_flight >= self.max_in_flight:
                self.buffer.requeue(lane)
                return
            batch = self.buffer.take(lane)
            self._in_flight += 1
            self.metrics.iterator_age.set(max(0.0, self.clock.now() - batch.records[-1].timestamp))
            self.pool.submit(self._run_batch, lane, batch)

    def _run_batch(self, lane: Lane, batch: Batch) -> None:
        """Runs on a lane-worker thread."""
        def settle(settlement: Settlement) -> None:
            self._settlements.put((lane, settlement))
        try:
            self.worker.process(batch, settle)
        except BaseException as exc:  # reported to the reader, which restarts the mapping
            log.exception("mapping %s: lane worker crashed", self.mapping.name)
            self._crashed = exc

    def apply_settlements(self, wait_seconds: float) -> bool:
        """Apply every queued settlement, waiting up to `wait_seconds` for the first; True
        if there was one."""
        try:
            item = self._settlements.get_nowait()
        except queue.Empty:
            # Queue acks deferred from ingest (filtered records) go now, not after a wait.
            self._flush_acks(self._queue_acks)
            if wait_seconds <= 0:
                return False
            try:
                item = self._settlements.get(timeout=wait_seconds)
            except queue.Empty:
                return False
        # Performance (queue family): the acks of every settlement applied in this turn, and
        # of the records the last poll filtered out, go to the source in one call: one
        # XACK / DeleteMessageBatch round instead of one per settlement and one per poll.
        # Stream sources keep one call per lane (a contiguous run).
        acks = self._queue_acks
        while True:
            self._settle(*item, acks)
            try:
                item = self._settlements.get_nowait()
            except queue.Empty:
                break
        self._flush_acks(acks)
        if self._crashed is not None:
            raise RuntimeError("a lane worker crashed") from self._crashed
        return True

    def _settle(self, lane: Lane, s: Settlement, acks: list[Record]) -> None:
        if s.finished:
            self._in_flight -= 1
            self.buffer.finished(lane)
        if not self.buffer.is_current(lane):
            return  # the lane was revoked: never ack for it again
        if s.ack and not self.stream:
            acks.extend(s.ack)
        elif s.ack:
            self._ack(lane.lane, s.ack)
        if s.release:
            # Acks gathered so far go first: a release can change how the source treats
            # the lane's other records (SQS FIFO voids the rest of the group), and records
            # that already succeeded must be deleted, not redelivered.
            self._flush_acks(acks)
            self.source.release(s.release, s.release_delay_seconds)
            self.metrics.count("released", len(s.release))
            if getattr(self.source, "ordered_lanes", False):
                self._release_buffered(lane)

    def _flush_acks(self, acks: list[Record]) -> None:
        if acks:
            self.source.ack(acks)
            self.metrics.count("deleted", len(acks))
            acks.clear()

    def _release_buffered(self, lane: Lane) -> None:
        """Ordered queue lanes (SQS FIFO message groups): once a record of the lane is
        released, its later buffered records must not be invoked before it comes back;
        hand them back too (ESM-SPEC §4.2 FIFO, checklist 41)."""
        records = self.buffer.take_back(lane)
        if records:
            self.source.release(records, 0.0)
            self.metrics.count("released", len(records))

    def _ack(self, lane: str, records: tuple[Record, ...]) -> None:
        """Stream family: commit the lane's finished prefix (queue acks: apply_settlements)."""
        ready = self._ledgers[lane].finish(records)
        if ready:
            self.source.ack(ready)
            self.metrics.count("committed", len(ready))

    # -- lane ownership (LaneListener) ------------------------------------------------------

    def lanes_assigned(self, lanes: Collection[str]) -> None:
        self.buffer.assigned(lanes)
        self._rebound_buffer()
        log.info("mapping %s: lanes assigned: %s", self.mapping.name, ", ".join(sorted(lanes)))

    def lanes_revoked(self, lanes: Collection[str]) -> None:
        """Settle in-flight batches of `lanes` (within the drain budget), then forget them."""
        revoked = self.buffer.revoke(lanes)
        deadline = time.monotonic() + self.drain_seconds
        while any(lane.busy for lane in revoked) and time.monotonic() < deadline:
            self.apply_settlements(0.05)
        self.buffer.forget(revoked)
        for name in lanes:
            self._ledgers.pop(name, None)
        self._rebound_buffer()
        log.info("mapping %s: lanes revoked: %s", self.mapping.name, ", ".join(sorted(lanes)))

    # -- stop and report ------------------------------------------------------------------

    def drain(self) -> None:
        """Wait for in-flight batches (within the budget) and apply their settlements."""
        deadline = time.monotonic() + self.drain_seconds
        while self._in_flight > 0 and time.monotonic() < deadline:
            self.apply_settlements(0.05)
        if self._in_flight:
            log.warning("mapping %s: %d batch(es) still in flight after the %.0fs drain budget;"
                        " their records will be delivered again", self.mapping.name,
                        self._in_flight, self.drain_seconds)
        if not self.stream:
            self._flush_acks(self._queue_acks)
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
        lag_value: float | None = None
        try:
            lag = self.source.lag()
            lag_value = float(sum(lag.values())) if lag else None
        except Exception as exc:  # lag is informative; a failure here must not stop reading
            log.debug("mapping %s: lag unavailable: %s", self.mapping.name, exc)
        if lag_value is not None:
            self.metrics.offset_lag.set(lag_value)
        self.metrics.in_flight.set(self._in_flight)
        self.status.update(
            lag=lag_value, in_flight_batches=self._in_flight,
            buffered_records=self.buffer.records, lanes=len(self.buffer.lanes),
            paused_lanes=self.buffer.paused_lanes(),
            outstanding_records=sum(len(led) for led in self._ledgers.values()),
        )
