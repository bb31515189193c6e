"""The reader: one thread per mapping that owns the source client.

It polls, filters, batches per lane, dispatches closed batches to lane workers, and applies
the settlements they send back (only this thread touches the source). DESIGN §2:
- a lane has one batch in flight (per ordering-key slot when parallelization_factor > 1);
- back-pressure: at most one closed batch waits behind a lane's in-flight batch, then the
  lane is paused at the source; the whole mapping buffers at most `max_buffered_records`
  and `MAX_BUFFERED_BYTES`,
  then stops polling; memory is bounded by configuration, never by backlog;
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
import zlib
from collections.abc import Collection, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field

from esm.batching import BatchLimits, LaneBatcher
from esm.config_types import MappingConfig
from esm.filtering import MATCH_ALL, Matcher
from esm.interfaces import Clock, Source
from esm.lane_worker import LaneWorker
from esm.metrics import MappingMetrics
from esm.positions import LaneLedger
from esm.records import Batch, Record, Settlement
from esm.status import MappingStatus

log = logging.getLogger(__name__)

# Read-ahead floor and byte ceiling of a mapping's buffer (records polled, not yet sent).
MIN_BUFFERED_RECORDS = 1000
MAX_BUFFERED_BYTES = 64 * 1024 * 1024


@dataclass(eq=False)
class _Lane:
    """Reader-side state of one lane (or one ordering-key slot of a lane)."""

    slot: str
    lane: str
    batcher: LaneBatcher
    ready: list[Batch] = field(default_factory=list)
    busy: bool = False
    paused: bool = False


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
        # Enough to keep every worker busy with a batch waiting behind it, and never so
        # little that small batches starve the source of read-ahead (each pause/resume
        # cycle can cost a broker round trip); bytes cap the worst case.
        self.max_buffered_records = max(mapping.batch_size * (max_in_flight + 1),
                                        int(min_buffered_records))
        self._lanes: dict[str, _Lane] = {}
        self._ledgers: dict[str, LaneLedger] = {}
        self._waiting: dict[str, None] = {}  # slots with a ready batch, insertion-ordered
        self._settlements: queue.SimpleQueue[tuple[_Lane, Settlement]] = queue.SimpleQueue()
        self._in_flight = 0
        self._buffered = 0
        self._buffered_bytes = 0
        self._assigned: set[str] = set()
        self._full_paused: set[str] = set()  # lanes paused because the buffer is full
        self._next_lag_at = 0.0
        self._crashed: BaseException | None = None
        self.idle = False

    # -- the loop -------------------------------------------------------------------------

    def run(self) -> None:
        self.source.open(self)
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

    def step(self) -> None:
        """One turn: settle, close due batches, dispatch, then poll (or wait)."""
        self.apply_settlements(0)
        self._close_due_batches()
        self._dispatch()
        self._report()
        if self.stop.is_set():
            return
        if self._apply_buffer_limit():
            self.apply_settlements(self._short_wait())
        self._poll()

    def _poll(self) -> None:
        if self._in_flight:
            # Barely block in the source: a settling batch must wake the reader at once,
            # and only the settlement queue can do that (no client has a portable wakeup).
            timeout = 0.001
        elif self._buffered:
            timeout = min(self.idle_poll_seconds, self._until_next_deadline())
        else:
            timeout = self.idle_poll_seconds
        room = max(1, self.max_buffered_records - self._buffered)
        started = time.monotonic()
        records = self.source.poll(room, timeout)
        self.idle = not records and not self._in_flight and not self._buffered
        if records:
            self.ingest(records)
            return
        if self._in_flight:
            self.apply_settlements(self._short_wait())
            return
        left = timeout - (time.monotonic() - started)
        if left > 0.005:  # the source returned early: wait here, not in a busy loop
            self.apply_settlements(left)

    def _apply_buffer_limit(self) -> bool:
        """While the buffer is full every lane is paused, but the reader keeps polling
        (paused lanes yield nothing) so group membership stays alive (Kafka's
        max.poll.interval) while the target catches up. True while full."""
        full = (self._buffered >= self.max_buffered_records
                or self._buffered_bytes >= MAX_BUFFERED_BYTES)
        if full and not self._full_paused:
            names = self._assigned | {lane.lane for lane in self._lanes.values()}
            self._full_paused = set(names)
            to_pause = sorted(n for n in names if not self._lane_paused(n))
            if to_pause:
                self.source.pause(to_pause)
        elif not full and self._full_paused:
            to_resume = sorted(n for n in self._full_paused if not self._lane_paused(n))
            self._full_paused = set()
            if to_resume:
                self.source.resume(to_resume)
        return full

    def _lane_paused(self, name: str) -> bool:
        return any(lane.paused for lane in self._lanes.values() if lane.lane == name)

    def _short_wait(self) -> float:
        return min(0.05, self._until_next_deadline())

    def _until_next_deadline(self) -> float:
        """Seconds until the earliest open batch that could be sent closes its window (1 h
        if none): a busy lane's batch waits for a settlement, which wakes the reader."""
        deadlines = [d for lane in self._lanes.values()
                     if not lane.busy and (d := lane.batcher.deadline()) is not None]
        if not deadlines:
            return 3600.0
        return max(0.0, min(deadlines) - self.clock.monotonic())

    # -- ingest: filter and batch -----------------------------------------------------------

    def ingest(self, records: Sequence[Record]) -> None:
        self.metrics.count("polled", len(records))
        now = self.clock.monotonic()
        filtered: list[Record] = []
        for record in records:
            matched = self._matches(record)
            if self.stream:
                self._ledger(record.lane).track(record, finished=not matched)
            if not matched:
                filtered.append(record)
                continue
            self._add(record, now)
        if filtered:
            self.metrics.count("filtered_out", len(filtered))
            self._ack_filtered(filtered)

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

    def _add(self, record: Record, now: float) -> None:
        lane = self._lane(record)
        self._buffered += 1
        self._buffered_bytes += record.size_bytes
        if not self.limits.fits_alone(record):
            self._queue_batches(lane, [b for b in (lane.batcher.flush(),) if b is not None])
            self._queue_batches(lane, [Batch(lane.lane, (record,))])
            return
        self._queue_batches(lane, lane.batcher.add(record, now))

    def _ack_filtered(self, filtered: list[Record]) -> None:
        if not self.stream:
            self.source.ack(filtered)
            self.metrics.count("deleted", len(filtered))
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

    def _lane(self, record: Record) -> _Lane:
        slot = record.lane
        factor = self.mapping.parallelization_factor
        if factor > 1 and record.ordering_key is not None:
            slot = f"{record.lane}#{zlib.crc32(record.ordering_key.encode()) % factor}"
        lane = self._lanes.get(slot)
        if lane is None:
            batcher = LaneBatcher(record.lane, self.limits)
            lane = self._lanes[slot] = _Lane(slot, record.lane, batcher)
        return lane

    def _queue_batches(self, lane: _Lane, batches: list[Batch]) -> None:
        if not batches:
            return
        lane.ready.extend(batches)
        if not lane.busy:
            self._waiting[lane.slot] = None
        self._update_pause(lane)

    def _update_pause(self, lane: _Lane) -> None:
        """A lane with a closed batch waiting has enough buffered: pause it at the source
        until the waiting batches are dispatched (DESIGN §2 back-pressure)."""
        if lane.ready and not lane.paused:
            lane.paused = True
            if lane.lane not in self._full_paused:
                self.source.pause([lane.lane])
        elif not lane.ready and lane.paused:
            lane.paused = False
            if lane.lane not in self._full_paused:
                self.source.resume([lane.lane])

    def _close_due_batches(self) -> None:
        """Close open batches whose window elapsed, on lanes free to take them. A busy
        lane keeps filling its open batch (up to the count and size limits): as in AWS,
        the next window starts when the previous invocation completes (ESM-SPEC §1.4)."""
        now = self.clock.monotonic()
        for lane in self._lanes.values():
            if not lane.busy and not lane.ready and lane.batcher.due(now):
                batch = lane.batcher.flush()
                if batch is not None:
                    self._queue_batches(lane, [batch])

    # -- dispatch and settle ----------------------------------------------------------------

    def _dispatch(self) -> None:
        for slot in list(self._waiting):
            if self._in_flight >= self.max_in_flight:
                return
            lane = self._lanes.get(slot)
            del self._waiting[slot]
            if lane is None or lane.busy or not lane.ready:
                continue
            batch = lane.ready.pop(0)
            self._update_pause(lane)
            lane.busy = True
            self._in_flight += 1
            self._buffered -= len(batch)
            self._buffered_bytes -= batch.size_bytes
            self.metrics.iterator_age.set(max(0.0, self.clock.now() - batch.records[-1].timestamp))
            self.pool.submit(self._run_batch, lane, batch)

    def _run_batch(self, lane: _Lane, batch: Batch) -> None:
        """Runs on a lane-worker thread."""
        def settle(settlement: Settlement) -> None:
            self._settlements.put((lane, settlement))
        try:
            self.worker.process(batch, settle)
        except BaseException as exc:  # reported to the reader, which restarts the mapping
            log.exception("mapping %s: lane worker crashed", self.mapping.name)
            self._crashed = exc

    def apply_settlements(self, wait_seconds: float) -> None:
        """Apply every queued settlement, waiting up to `wait_seconds` for the first."""
        try:
            item = self._settlements.get(timeout=wait_seconds) if wait_seconds > 0 \
                else self._settlements.get_nowait()
        except queue.Empty:
            return
        # Performance (queue family): the acks of every settlement applied in this turn go
        # to the source in one call, so one XACK / DeleteMessageBatch round trip instead of
        # one per settlement. Stream sources keep one call per lane (a contiguous run).
        acks: list[Record] = []
        while True:
            self._settle(*item, acks)
            try:
                item = self._settlements.get_nowait()
            except queue.Empty:
                break
        self._flush_acks(acks)
        if self._crashed is not None:
            raise RuntimeError("a lane worker crashed") from self._crashed

    def _settle(self, lane: _Lane, s: Settlement, acks: list[Record]) -> None:
        current = self._lanes.get(lane.slot) is lane
        if s.finished:
            self._in_flight -= 1
            lane.busy = False
            if current and lane.ready:
                self._waiting[lane.slot] = None
        if not current:
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

    def _release_buffered(self, lane: _Lane) -> None:
        """Ordered queue lanes (SQS FIFO message groups): once a record of the lane is
        released, its later buffered records must not be invoked before it comes back;
        hand them back too (ESM-SPEC §4.2 FIFO, checklist 41)."""
        records = [r for batch in lane.ready for r in batch.records]
        open_batch = lane.batcher.flush()
        if open_batch is not None:
            records.extend(open_batch.records)
        if not records:
            return
        lane.ready.clear()
        self._waiting.pop(lane.slot, None)
        self._buffered -= len(records)
        self._buffered_bytes -= sum(r.size_bytes for r in records)
        self._update_pause(lane)
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
        self._assigned.update(lanes)
        if self._full_paused:  # new lanes wait too while the buffer is full
            self._full_paused.update(lanes)
            self.source.pause(sorted(lanes))
        log.info("mapping %s: lanes assigned: %s", self.mapping.name, ", ".join(sorted(lanes)))

    def lanes_revoked(self, lanes: Collection[str]) -> None:
        """Settle in-flight batches of `lanes` (within the drain budget), then forget them."""
        revoked = set(lanes)
        self._assigned -= revoked
        self._full_paused -= revoked
        slots = [s for s, lane in self._lanes.items() if lane.lane in revoked]
        for slot in slots:
            lane = self._lanes[slot]
            open_batch = lane.batcher.flush()
            dropped = [*(b for b in lane.ready), *([open_batch] if open_batch else [])]
            self._buffered -= sum(len(b) for b in dropped)
            self._buffered_bytes -= sum(b.size_bytes for b in dropped)
            lane.ready.clear()
        deadline = time.monotonic() + self.drain_seconds
        while any(self._lanes[s].busy for s in slots) and time.monotonic() < deadline:
            self.apply_settlements(0.05)
        for slot in slots:
            self._waiting.pop(slot, None)
            del self._lanes[slot]
        for lane_name in revoked:
            self._ledgers.pop(lane_name, None)
        log.info("mapping %s: lanes revoked: %s", self.mapping.name, ", ".join(sorted(revoked)))

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
            self._release_undispatched()

    def _release_undispatched(self) -> None:
        """Queue family: hand buffered, never-dispatched records back at once."""
        records = [r for lane in self._lanes.values() for b in lane.ready for r in b.records]
        for lane in self._lanes.values():
            batch = lane.batcher.flush()
            if batch is not None:
                records.extend(batch.records)
            lane.ready.clear()
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
            lag=lag_value, in_flight_batches=self._in_flight, buffered_records=self._buffered,
            lanes=len(self._lanes),
            paused_lanes=sum(1 for lane in self._lanes.values() if lane.paused),
            outstanding_records=sum(len(led) for led in self._ledgers.values()),
        )
