"""Where polled records wait between poll and dispatch: per lane (or per ordering-key slot
when parallelization_factor > 1) one open batch and the closed batches ready to send.

It also owns back-pressure (DESIGN §2): a lane with a closed batch waiting is paused at the
source until that batch is dispatched (with key slots: once its slots hold as many waiting
batches as there are slots, enough to keep every slot busy); when the whole buffer reaches
its record or byte bound every lane is paused, and lanes resume as it drains. Memory is
therefore bounded by configuration, never by the backlog. Used only from the reader thread.

Lanes the source announces (partitions, shards, streams, queue slots) keep their state
while owned. Lanes that come with the data (SQS FIFO message groups: one per group id
ever read) are dropped once idle (`drop_if_idle`), so that neither memory nor the turn's
scans over the lanes grow with the number of groups seen (they did: after 80,000 groups of
one message each, every turn scanned 80,000 lanes).
"""

from __future__ import annotations

import zlib
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from operator import attrgetter

from esm.interfaces import Source
from esm.pipeline.batching import BatchLimits, LaneBatcher
from esm.records import Batch, Record

_lane_of = attrgetter("lane")

# Records polled and not yet committed, as a multiple of the buffer's record bound.
OUTSTANDING_PER_BUFFERED = 4


def key_slot(ordering_key: str, factor: int) -> int:
    """The slot (0 … factor-1) of a lane that runs a key's records: one key, one slot, so
    its records keep their order. Records without a key run in the lane's own slot."""
    return zlib.crc32(ordering_key.encode()) % factor


@dataclass(eq=False)
class Lane:
    """Buffer state of one lane (or one ordering-key slot of a lane)."""

    slot: str
    lane: str
    batcher: LaneBatcher
    ready: list[Batch] = field(default_factory=list)
    busy: bool = False


class LaneBuffer:
    """Open and ready batches of every lane, with the buffer's bounds."""

    def __init__(self, source: Source, limits: BatchLimits, *, parallelization_factor: int,
                 max_in_flight: int, min_records: int, max_bytes: int,
                 window_seconds: int = 0) -> None:
        self.source = source
        self.limits = limits
        self.parallelization_factor = parallelization_factor
        self.max_in_flight = max_in_flight
        self.min_records = min_records
        self.max_bytes = max_bytes
        self.window_seconds = window_seconds  # tumbling windows: batches never straddle one
        self.lanes: dict[str, Lane] = {}
        self.records = 0  # buffered, not yet dispatched
        self.bytes = 0
        self._waiting: dict[str, None] = {}  # slots with a ready batch, insertion-ordered
        self._assigned: set[str] = set()
        self._full_paused: set[str] = set()  # lanes paused because the buffer is full
        self._paused: set[str] = set()  # lanes paused because enough batches wait
        self._waiting_batches: dict[str, int] = {}  # per lane, over its slots
        self._pause_at = parallelization_factor
        self.max_records = self._bound()

    def _bound(self) -> int:
        """Records the buffer may hold: enough for every batch that can run at once to
        have one waiting behind it, and never so little that small batches starve the
        source of read-ahead; `max_bytes` caps the worst case. At most one batch per lane
        (per key slot) runs, so with few lanes fewer than `max_in_flight` can: reading
        further ahead only holds records longer, and records decoded long before they are
        invoked have left the CPU cache (bench_redis, one stream and 16 workers: a
        1,700-record buffer cost ~15% more CPU per record than 1,000). Lanes not
        announced (discovered as records come, e.g. FIFO groups): `max_in_flight`."""
        runnable = self.max_in_flight
        if self._assigned:
            runnable = min(runnable, len(self._assigned) * self.parallelization_factor)
        return max(self.limits.batch_size * (runnable + 1), self.min_records)

    # -- filling ----------------------------------------------------------------------------

    def add(self, record: Record, now: float) -> None:
        """Buffer a record that passed the filter; a record too large for any event gets a
        batch of its own (the lane worker dead-letters it, DESIGN §4)."""
        lane = self.lanes.get(record.lane) if self.parallelization_factor == 1 else None
        if lane is None:
            lane = self._lane(record)
        self.records += 1
        self.bytes += record.size_bytes
        if not self.limits.fits_alone(record):
            self._queue(lane, [b for b in (lane.batcher.flush(),) if b is not None])
            self._queue(lane, [Batch(lane.lane, (record,))])
            return
        if self.window_seconds and self._new_window(lane, record):
            self._queue(lane, [b for b in (lane.batcher.flush(),) if b is not None])
        closed = lane.batcher.add(record, now)
        if closed:
            self._queue(lane, closed)

    def add_all(self, records: Sequence[Record], now: float) -> None:
        """`add` for a poll's matched records, a lane run at a time: when every record of a
        run fits an event on its own, the run goes to the batcher in slices."""
        if self.parallelization_factor != 1 or self.window_seconds:
            for record in records:
                self.add(record, now)
            return
        limit = self.limits.max_bytes - self.limits.envelope_bytes - 1
        for name, group in groupby(records, _lane_of):
            run = list(group)
            sizes = [r.size_bytes for r in run]
            if max(sizes) > limit:  # a record too large for any event: one by one
                for record in run:
                    self.add(record, now)
                continue
            lane = self.lanes.get(name) or self._lane(run[0])
            self.records += len(run)
            self.bytes += sum(sizes)
            closed = lane.batcher.extend(run, sizes, now)
            if closed:
                self._queue(lane, closed)

    def queue_final(self, name: str) -> None:
        """Tumbling windows: an empty batch (the window's final invoke) after everything
        buffered on the lane, so the final comes after the window's last records."""
        lane = self.lanes.get(name)
        if lane is None:
            lane = self.lanes[name] = Lane(name, name, LaneBatcher(name, self.limits))
        self._queue(lane, [b for b in (lane.batcher.flush(), Batch(name, ())) if b is not None])

    def close_due(self, now: float) -> None:
        """Close open batches whose window elapsed, on lanes free to take them. A busy lane
        keeps filling its open batch (up to the count and size limits): as in AWS, the next
        window starts when the previous invocation completes (ESM-SPEC §1.4)."""
        for lane in self.lanes.values():
            if not lane.busy and not lane.ready and lane.batcher.due(now):
                batch = lane.batcher.flush()
                if batch is not None:
                    self._queue(lane, [batch])

    def until_next_deadline(self, now: float) -> float:
        """Seconds until the earliest open batch that could be sent closes its window (1 h
        if none): a busy lane's batch waits for a settlement, which wakes the reader."""
        deadlines = [d for lane in self.lanes.values()
                     if not lane.busy and (d := lane.batcher.deadline()) is not None]
        return max(0.0, min(deadlines) - now) if deadlines else 3600.0

    # -- dispatching ------------------------------------------------------------------------

    def dispatchable(self) -> Iterator[Lane]:
        """Free lanes with a ready batch, oldest first; the caller takes one with `take`."""
        for slot in list(self._waiting):
            del self._waiting[slot]
            lane = self.lanes.get(slot)
            if lane is not None and not lane.busy and lane.ready:
                yield lane

    def requeue(self, lane: Lane) -> None:
        """A lane `dispatchable` offered but the caller could not take (no free worker)."""
        self._waiting[lane.slot] = None

    def take(self, lane: Lane) -> Batch:
        """The lane's next batch, now in flight."""
        batch = lane.ready.pop(0)
        self._count_waiting(lane, -1)
        lane.busy = True
        self.records -= len(batch)
        self.bytes -= batch.size_bytes
        return batch

    def finished(self, lane: Lane) -> None:
        """The lane's in-flight batch is settled; the lane may take its next batch."""
        lane.busy = False
        if self.is_current(lane) and lane.ready:
            self._waiting[lane.slot] = None

    def is_current(self, lane: Lane) -> bool:
        """False once the lane was revoked (its state dropped)."""
        return self.lanes.get(lane.slot) is lane

    def drop_if_idle(self, lane: Lane) -> None:
        """Forget a lane the source did not announce once nothing of it is buffered or in
        flight; its next record starts it again. Called after the lane's last settlement
        is applied: a settlement for a lane no longer current is ignored (is_current)."""
        if lane.busy or lane.ready or len(lane.batcher) or lane.lane in self._assigned \
                or self.lanes.get(lane.slot) is not lane:
            return
        del self.lanes[lane.slot]
        self._waiting.pop(lane.slot, None)
        if not self._waiting_batches.get(lane.lane, 0):
            self._waiting_batches.pop(lane.lane, None)

    def take_back(self, lane: Lane) -> list[Record]:
        """Remove and return the lane's buffered records (ordered queue lanes hand them back
        after a release, ESM-SPEC §4.2 FIFO)."""
        records = [r for batch in self._drop_batches(lane) for r in batch.records]
        self._waiting.pop(lane.slot, None)
        return records

    def take_all(self) -> list[Record]:
        """Every buffered record, removed (queue sources release them on stop)."""
        return [r for lane in self.lanes.values() for b in self._drop_batches(lane)
                for r in b.records]

    # -- back-pressure ----------------------------------------------------------------------

    def apply_limit(self, outstanding: int = 0, hold: bool = False) -> bool:
        """While the buffer is full (or `hold`: the circuit breaker is open) every lane is
        paused, but the reader keeps polling (paused lanes yield nothing) so group
        membership stays alive (Kafka's max.poll.interval) while the target catches up.
        True while full or held.

        `outstanding` (stream records polled and not yet committed) counts too, against
        `OUTSTANDING_PER_BUFFERED` times the buffer bound: with parallelization_factor > 1
        a slot stuck in retries holds its lane's checkpoint while the other slots finish
        record after record behind it, each remembered until the checkpoint can pass it;
        without this bound that memory would grow with the backlog."""
        full = (hold or self.records >= self.max_records or self.bytes >= self.max_bytes
                or outstanding >= self.max_records * OUTSTANDING_PER_BUFFERED)
        if full and not self._full_paused:
            names = self._assigned | {lane.lane for lane in self.lanes.values()}
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

    def oldest_timestamp(self) -> float | None:
        """Broker timestamp of the oldest buffered record (the first of each batch: lanes
        are in order), or None when nothing is buffered."""
        firsts = [b.records[0].timestamp for lane in self.lanes.values() for b in lane.ready]
        firsts += [r.timestamp for lane in self.lanes.values()
                   if (r := lane.batcher.first()) is not None]
        return min(firsts, default=None)

    def paused_lanes(self) -> int:
        return len(self._paused)

    # -- lane ownership ---------------------------------------------------------------------

    def assigned(self, names: Collection[str]) -> None:
        self._assigned.update(names)
        self.max_records = self._bound()
        if self._full_paused:  # new lanes wait too while the buffer is full
            self._full_paused.update(names)
            self.source.pause(sorted(names))

    def revoke(self, names: Collection[str]) -> list[Lane]:
        """Drop the buffered batches of lanes the broker took away; return their states,
        which stay until `forget` so in-flight batches can still settle."""
        revoked = set(names)
        self._assigned -= revoked
        self.max_records = self._bound()
        self._full_paused -= revoked
        self._paused -= revoked
        lanes = [lane for lane in self.lanes.values() if lane.lane in revoked]
        for lane in lanes:
            self._drop_batches(lane)
        return lanes

    def forget(self, lanes: list[Lane]) -> None:
        for lane in lanes:
            self._waiting.pop(lane.slot, None)
            self.lanes.pop(lane.slot, None)

    # -- internals --------------------------------------------------------------------------

    def _lane(self, record: Record) -> Lane:
        slot = record.lane
        factor = self.parallelization_factor
        if factor > 1 and record.ordering_key is not None:
            slot = f"{record.lane}#{key_slot(record.ordering_key, factor)}"
        lane = self.lanes.get(slot)
        if lane is None:
            lane = self.lanes[slot] = Lane(slot, record.lane, LaneBatcher(record.lane, self.limits))
        return lane

    def _new_window(self, lane: Lane, record: Record) -> bool:
        first = lane.batcher.first()
        seconds = self.window_seconds
        # Only a later window starts a batch: a late record (Kafka producer timestamps)
        # joins the open one.
        return first is not None and record.timestamp // seconds > first.timestamp // seconds

    def _queue(self, lane: Lane, batches: list[Batch]) -> None:
        if not batches:
            return
        lane.ready.extend(batches)
        if not lane.busy:
            self._waiting[lane.slot] = None
        self._count_waiting(lane, len(batches))

    def _count_waiting(self, lane: Lane, change: int) -> None:
        """Closed batches waiting on the lane (over its key slots) changed by `change`: a
        lane with enough of them (one, or one per slot) is paused at the source until they
        are dispatched. With key slots that keeps every slot fed while the others run."""
        waiting = self._waiting_batches.get(lane.lane, 0) + change
        self._waiting_batches[lane.lane] = waiting
        name = lane.lane
        if waiting >= self._pause_at and name not in self._paused:
            self._paused.add(name)
            if name not in self._full_paused:
                self.source.pause([name])
        elif waiting < self._pause_at and name in self._paused:
            self._paused.discard(name)
            if name not in self._full_paused:
                self.source.resume([name])

    def _drop_batches(self, lane: Lane) -> list[Batch]:
        open_batch = lane.batcher.flush()
        dropped = [*lane.ready, *([open_batch] if open_batch is not None else [])]
        self._count_waiting(lane, -len(lane.ready))
        lane.ready.clear()
        self.records -= sum(len(b) for b in dropped)
        self.bytes -= sum(b.size_bytes for b in dropped)
        return dropped

    def _lane_paused(self, name: str) -> bool:
        return name in self._paused
