"""What the reader owes the source in acks (DESIGN §2, §3).

- Stream family: a lane's checkpoint is a position, so each lane's records are tracked in
  poll order (`LaneLedger`) and only a finished, contiguous prefix is acked; filtered
  records finish at once (checklist 32, 56).
- Queue family: records are acked one by one, so the acks of a reader turn are gathered
  and sent in one call (one XACK / DeleteMessageBatch round instead of one per settlement
  and one per poll), at the latest before the reader next waits.

Used only from the reader thread.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from itertools import groupby
from operator import attrgetter

from esm.interfaces import Source
from esm.ops.metrics import MappingMetrics
from esm.pipeline.positions import LaneLedger
from esm.records import Record

_lane_of = attrgetter("lane")


class AckBook:
    """Ledgers of stream lanes, and queue acks not yet sent."""

    def __init__(self, source: Source, metrics: MappingMetrics, *, stream: bool) -> None:
        self.source = source
        self.metrics = metrics
        self.stream = stream
        self._ledgers: dict[str, LaneLedger] = {}
        self._queue: list[Record] = []

    def track(self, records: Sequence[Record], filtered: Sequence[Record]) -> None:
        """Stream family: remember a poll's records in lane order; `filtered` (a subset)
        are finished already."""
        rejected = {id(r) for r in filtered}
        for lane, run in groupby(records, _lane_of):
            self._ledger(lane).track_run(list(run), rejected)

    def filtered(self, filtered: Sequence[Record]) -> None:
        """Records the filter rejected: acked (queue: with the next flush; stream: as far
        as their lanes' finished prefixes reach)."""
        if not self.stream:
            self._queue.extend(filtered)
            return
        for lane in {r.lane for r in filtered}:
            self._commit(self._ledgers[lane].pop_finished())

    def settled(self, lane: str, records: Sequence[Record]) -> None:
        """Records a lane worker finished for good (queue: sent with the next flush)."""
        if not self.stream:
            self._queue.extend(records)
            return
        self._commit(self._ledgers[lane].finish(tuple(records)))

    def flush(self) -> None:
        """Send the queue acks gathered so far, in one call."""
        if self._queue:
            acks, self._queue = self._queue, []
            self.source.ack(acks)
            self.metrics.count("deleted", len(acks))

    def forget(self, lanes: Collection[str]) -> None:
        """Revoked lanes: never ack for them again."""
        for name in lanes:
            self._ledgers.pop(name, None)

    def outstanding(self) -> int:
        """Stream records polled and not yet acked."""
        return sum(len(ledger) for ledger in self._ledgers.values())

    def _commit(self, ready: list[Record]) -> None:
        if ready:
            self.source.ack(ready)
            self.metrics.count("committed", len(ready))

    def _ledger(self, lane: str) -> LaneLedger:
        ledger = self._ledgers.get(lane)
        if ledger is None:
            ledger = self._ledgers[lane] = LaneLedger()
        return ledger
