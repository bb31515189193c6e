"""In-order acknowledgement for the stream family.

A stream lane's checkpoint is a position: committing record N says every record before it
is finished. Records finish out of order (filtered at once, batches settle later, a later
batch may settle before a retried earlier one never does: it cannot, since a lane has one
batch in flight, but filtered records finish before in-flight ones). `LaneLedger` remembers
each lane's records in poll order and releases only the contiguous finished prefix, so
`Source.ack` always receives a run that is safe to commit (DESIGN §3, checklist 32, 56).
"""

from __future__ import annotations

from esm.records import Record

# Finished entries at the head are dropped from the list in one slice once this many have
# piled up (and they are at least half of it): amortised O(1) per record.
_COMPACT_AT = 1024


class LaneLedger:
    """Poll-ordered records of one lane with a finished mark each.

    Entries live in a list read from `_head`; the finished marks of records not yet at
    the head are ids in `_finished`. The usual case, a batch settling while it is the
    oldest unfinished run of its lane, is one slice comparison and no per-record loop."""

    __slots__ = ("_entries", "_head", "_finished")

    def __init__(self) -> None:
        self._entries: list[Record] = []
        self._head = 0
        self._finished: set[int] = set()

    def __len__(self) -> int:
        return len(self._entries) - self._head

    def track(self, record: Record, finished: bool = False) -> None:
        self._entries.append(record)
        if finished:
            self._finished.add(id(record))

    def finish(self, records: tuple[Record, ...] | list[Record]) -> list[Record]:
        """Mark records finished; return the newly committable prefix, in order."""
        head, count = self._head, len(records)
        if not self._finished and count:
            run = self._entries[head:head + count]
            if run == list(records):  # Records compare by identity: the oldest run
                self._advance(head + count)
                return run
        self._finished.update(map(id, records))
        return self.pop_finished()

    def pop_finished(self) -> list[Record]:
        entries, finished = self._entries, self._finished
        start = end = self._head
        while end < len(entries) and id(entries[end]) in finished:
            finished.discard(id(entries[end]))
            end += 1
        if end == start:
            return []
        ready = entries[start:end]
        self._advance(end)
        return ready

    def _advance(self, head: int) -> None:
        if head >= _COMPACT_AT and head * 2 >= len(self._entries):
            del self._entries[:head]
            head = 0
        self._head = head
