"""The batches a mapping's reader has sent out, and applying what comes back from them.

Lane workers (on lane threads, or on the reader's own thread) put each batch's settlements
on one queue (esm.pipeline.dispatch); only the reader applies them, since only it touches
the source (DESIGN §2). A settlement acks records (stream lanes commit a finished,
contiguous prefix, queue acks of a turn go in one call: `AckBook`), releases records for
redelivery, and, when it is the batch's last, frees the lane for its next batch.
"""

from __future__ import annotations

import queue

from esm.interfaces import Source
from esm.ops.metrics import MappingMetrics
from esm.pipeline.acks import AckBook
from esm.pipeline.dispatch import Dispatcher
from esm.pipeline.lane_buffer import Lane, LaneBuffer
from esm.records import Batch, Settlement
from esm.windows.book import WindowBook


class InFlight:
    """One mapping's batches in flight; see the module docstring. Reader thread only."""

    def __init__(self, *, source: Source, buffer: LaneBuffer, acks: AckBook,
                 windows: WindowBook | None, metrics: MappingMetrics,
                 dispatcher: Dispatcher) -> None:
        self.source = source
        self.buffer = buffer
        self.acks = acks
        self.windows = windows
        self.metrics = metrics
        self.dispatcher = dispatcher
        self._queue = dispatcher.settlements
        self.count = 0
        self.first_timestamps: dict[Lane, float] = {}  # per lane: its batch's first record's

    def sent(self, lane: Lane, batch: Batch) -> None:
        self.count += 1
        if batch.records:  # a window's final invoke has none
            self.first_timestamps[lane] = batch.records[0].timestamp

    def queued(self) -> bool:
        """Whether a settlement waits to be applied."""
        return not self._queue.empty()

    def apply(self, wait_seconds: float) -> bool:
        """Apply every queued settlement, waiting up to `wait_seconds` for the first; True
        if there was one."""
        try:
            item = self._queue.get_nowait()
        except queue.Empty:
            # Queue acks deferred from ingest (filtered records) go now, not after a wait.
            self.acks.flush()
            if wait_seconds <= 0:
                return False
            try:
                item = self._queue.get(timeout=wait_seconds)
            except queue.Empty:
                return False
        # Queue acks of every settlement applied in this turn go to the source in one call
        # (AckBook); stream lanes ack their finished prefix as each settlement lands.
        while True:
            self._settle(*item)
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
        self.acks.flush()
        if self.dispatcher.crashed is not None:
            raise RuntimeError("a lane worker crashed") from self.dispatcher.crashed
        return True

    def _settle(self, lane: Lane, s: Settlement) -> None:
        if s.finished:
            self.count -= 1
            self.first_timestamps.pop(lane, None)
            self.buffer.finished(lane)
        if not self.buffer.is_current(lane):
            return  # the lane was revoked: never ack for it again
        self._apply(lane, s)
        if s.finished:
            self.buffer.drop_if_idle(lane)  # only now: its acks above needed it current

    def _apply(self, lane: Lane, s: Settlement) -> None:
        if self.windows is not None:  # before the acks below move a checkpoint
            self.windows.save_unsaved(self.source)
        if s.ack:
            self.acks.settled(lane.lane, s.ack)
        if s.release:
            # Acks gathered so far go first: a release can change how the source treats
            # the lane's other records (SQS FIFO voids the rest of the group), and records
            # that already succeeded must be deleted, not redelivered.
            self.acks.flush()
            self.source.release(s.release, s.release_delay_seconds)
            self.metrics.count("released", len(s.release))
            if getattr(self.source, "ordered_lanes", False):
                self._release_buffered(lane)

    def _release_buffered(self, lane: Lane) -> None:
        """Ordered queue lanes (SQS FIFO message groups): once a record of the lane is
        released, its later buffered records must not be invoked before it comes back;
        hand them back too (ESM-SPEC §4.2 FIFO, checklist 41)."""
        records = self.buffer.take_back(lane)
        if records:
            self.source.release(records, 0.0)
            self.metrics.count("released", len(records))
