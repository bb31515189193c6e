"""In-order acknowledgement for the stream family.

A stream lane's checkpoint is a position: committing record N says every record before it
is finished. Records finish out of order (filtered at once, batches settle later, a later
batch may settle before a retried earlier one never does: it cannot, since a lane has one
batch in flight, but filtered records finish before in-flight ones). `LaneLedger` remembers
each lane's records in poll order and releases only the contiguous finished prefix, so
`Source.ack` always receives a run that is safe to commit (DESIGN §3, checklist 32, 56).
"""

from __future__ import annotations

from collections import deque

from esm.records import Record


class LaneLedger:
    """Poll-ordered records of one lane with a finished mark each."""

    __slots__ = ("_entries", "_finished")

    def __init__(self) -> None:
        self._entries: deque[Record] = deque()
        self._finished: set[int] = set()

    def __len__(self) -> int:
        return len(self._entries)

    def track(self, record: Record, finished: bool = False) -> None:
        self._entries.append(record)
        if finished:
            self._finished.add(id(record))

    def finish(self, records: tuple[Record, ...] | list[Record]) -> list[Record]:
        """Mark records finished; return the newly committable prefix, in order."""
        self._finished.update(id(r) for r in records)
        return self.pop_finished()

    def pop_finished(self) -> list[Record]:
        ready: list[Record] = []
        entries, finished = self._entries, self._finished
        while entries and id(entries[0]) in finished:
            record = entries.popleft()
            finished.discard(id(record))
            ready.append(record)
        return ready
