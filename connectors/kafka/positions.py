"""Where a Kafka lane starts reading each time the group assigns it.

Why this exists: when the group takes lanes away, the core drops their buffered batches and
the source drops their held records; none of them was acked, so whoever owns the lane next
must read them again. kafka-python 3 keeps a partition's fetch position (and its paused
flag) when the same consumer keeps the partition across a rebalance, so without a seek the
consumer would read on after the dropped records and the next ack would commit past them:
records lost without a trace. Every assignment therefore sets each lane's position anew,
from what the group knows, never from what kafka-python remembers:

1. the group's committed offset, when there is one: the first record not acked;
2. else the restart point this consumer noted when it last gave the lane up (the first
   record it had not finished), for when the revocation's own commit failed;
3. else nothing: kafka-python applies `auto_offset_reset` (or the source seeks
   AT_TIMESTAMP), as for a group that never read the partition.

So that case 3 never skips records that a member fetched and then dropped (LATEST, in a
group that never committed), the first offset fetched for a partition the group never
committed is committed at once ("pinned"): that claims nothing as processed, it only fixes
where the next owner starts.

Reader thread only; pure bookkeeping, the source does the client calls.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

TopicPartition = Any  # kafka-python's namedtuple; kept opaque here


class StartPositions:
    """Restart points of revoked lanes and the partitions still to pin."""

    def __init__(self) -> None:
        self._restart_at: dict[TopicPartition, int] = {}
        self._unpinned: set[TopicPartition] = set()

    def on_assigned(self, committed: Mapping[TopicPartition, int | None]
                    ) -> dict[TopicPartition, int]:
        """The offset to seek each assigned partition to (rules 1 and 2 above); partitions
        left out start where kafka-python's reset policy puts them (rule 3). Partitions the
        group never committed are pinned at their first fetch."""
        starts: dict[TopicPartition, int] = {}
        for tp, offset in committed.items():
            restart = self._restart_at.pop(tp, None)
            if offset is None:
                self._unpinned.add(tp)
                if restart is not None:
                    starts[tp] = restart
            else:
                self._unpinned.discard(tp)
                starts[tp] = offset
        return starts

    def to_pin(self, tp: TopicPartition, first_offset: int) -> bool:
        """True once for a never-committed partition: commit `first_offset`, the first
        record fetched for it, as the group's position."""
        if tp not in self._unpinned:
            return False
        self._unpinned.discard(tp)
        return first_offset >= 0

    def revoked(self, positions: Iterable[tuple[TopicPartition, int | None]]) -> None:
        """Lanes given up: remember where each restarts (the first record not acked), for
        the next time the group hands it back while it has no committed offset."""
        for tp, position in positions:
            self._unpinned.discard(tp)
            if position is not None:
                self._restart_at[tp] = position
