"""In-order acknowledgement for the stream family.

A stream lane's checkpoint is a position: committing record N says every record before it
is finished. Records finish out of order (filtered at once, batches settle later, a later
batch may settle before a retried earlier one never does: it cannot, since a lane has one
batch in flight, but filtered records finish before in-flight ones). `LaneLedger` remembers
each lane's records in poll order and releases only the contiguous finished prefix, so
`Source.ack` always receives a run that is safe to commit (DESIGN §3, checklist 32, 56).
"""

from __future__ import annotations

from typing import cast

from esm.records import Record


class LaneLedger:
    """Poll-ordered records of one lane with a finished mark each.

    Entries live in a list read from `_head` (slots before it are None: committed records
    are released at once); the finished marks of records not yet at the head are ids in
    `_finished`. The usual case, a batch settling while it is the oldest unfinished run of
    its lane, is one slice comparison and no per-record loop."""

    __slots__ = ("_entries", "_head", "_finished")

    def __init__(self) -> None:
        self._entries: list[Record | None] = []
        self._head = 0
        self._finished: set[int] = set()

    def __len__(self) -> int:
        return len(self._entries) - self._head

    def track(self, record: Record, finished: bool = False) -> None:
        self._entries.append(record)
        if finished:
            self._finished.add(id(record))

    def track_run(self, records: list[Record], finished_ids: set[int]) -> None:
        """`track` for a run of records in poll order; those whose id() is in
        `finished_ids` are finished already (filtered out)."""
        self._entries.extend(records)
        if finished_ids:
            self._finished.update(id(r) for r in records if id(r) in finished_ids)

    def finish(self, records: tuple[Record, ...] | list[Record]) -> list[Record]:
        """Mark records finished; return the newly committable prefix, in order."""
        head, count = self._head, len(records)
        if not self._finished and count:
            run = self._entries[head:head + count]
            if run == list(records):  # Records compare by identity: the oldest run
                self._advance(head, head + count)
                return cast("list[Record]", run)
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
        ready = cast("list[Record]", entries[start:end])
        self._advance(start, end)
        return ready

    def _advance(self, start: int, head: int) -> None:
        """Commit entries [start, head). Drop them from the list once the committed part is
        at least half of it (the usual case, everything tracked is committed, just empties
        it): moving the rest costs at most what was dropped, amortised O(1) per record.
        Otherwise release them now and keep their slots (None) until then."""
        entries = self._entries
        if head * 2 >= len(entries):
            del entries[:head]
            head = 0
        else:
            entries[start:head] = [None] * (head - start)
        self._head = head
