"""Where a Kafka lane starts reading each time the group assigns it.

Why this exists: when the group takes lanes away, the core drops their buffered batches and
the source drops their held records; none of them was acked, so whoever owns the lane next
must read them again, even when the same consumer gets the lane back: reading on from where
the client stood would skip the dropped records, and the next ack would commit past them
(records lost without a trace). Every assignment therefore sets each lane's start offset
itself (the source assigns the partitions with these offsets in librdkafka's on_assign),
from what the group knows, never from what the client remembers:

1. the group's committed offset, when there is one: the first record not acked — or this
   consumer's restart point (below) when that is further: every record before it was
   acked here, only the commit never landed (an assignment lost when a broker outage
   outlasted the session), and running them again would be needless duplicates;
2. else the restart point this consumer noted when it last gave the lane up (the first
   record it had not finished), for when the revocation's own commit failed;
3. else the starting position, as for a group that never read the partition (earliest,
   latest, or the first offset at or after AT_TIMESTAMP).

So that case 3 never skips records that a member fetched and then dropped (LATEST, in a
group that never committed), the first offset fetched for a partition the group never
committed is committed at once ("pinned"): that claims nothing as processed, it only fixes
where the next owner starts.

Reader thread only. `StartPositions` is pure bookkeeping; `committed_offsets` and
`fresh_starts` are the two lookups an assignment needs (librdkafka calls on the consumer).

`partition_lags` measures how far each owned lane is behind: log end offset − acked
position (ESM-SPEC §6 OffsetLag; an acked offset counts as processed even before its async
commit is confirmed). Partitions the group never committed nor acked are left out
(unknown).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, TopicPartition

from connectors.kafka.commits import OffsetCommitter
from esm.errors import SourceUnavailable

Key = Any  # the source's (topic, partition); kept opaque here
_FRESH_STARTS = {"TRIM_HORIZON": OFFSET_BEGINNING, "LATEST": OFFSET_END}


class StartPositions:
    """Restart points of revoked lanes and the partitions still to pin."""

    def __init__(self) -> None:
        self._restart_at: dict[Key, int] = {}
        self._unpinned: set[Key] = set()

    def on_assigned(self, committed: Mapping[Key, int | None]
                    ) -> dict[Key, int]:
        """The offset to seek each assigned partition to (rules 1 and 2 above); partitions
        left out start at the starting position (rule 3). Partitions the
        group never committed are pinned at their first fetch."""
        starts: dict[Key, int] = {}
        for tp, offset in committed.items():
            restart = self._restart_at.pop(tp, None)
            if offset is None:
                self._unpinned.add(tp)
                if restart is not None:
                    starts[tp] = restart
            else:
                self._unpinned.discard(tp)
                starts[tp] = offset if restart is None else max(offset, restart)
        return starts

    def to_pin(self, tp: Key, first_offset: int) -> bool:
        """True once for a never-committed partition: commit `first_offset`, the first
        record fetched for it, as the group's position."""
        if tp not in self._unpinned:
            return False
        self._unpinned.discard(tp)
        return first_offset >= 0

    def revoked(self, positions: Iterable[tuple[Key, int | None]]) -> None:
        """Lanes given up: remember where each restarts (the first record not acked), for
        the next time the group hands it back while it has no committed offset."""
        for tp, position in positions:
            self._unpinned.discard(tp)
            if position is not None:
                self._restart_at[tp] = position


def committed_offsets(consumer: Any, tps: list[Key], timeout: float
                      ) -> dict[Key, int | None]:
    """The group's committed offset per partition (None: never committed)."""
    found = consumer.committed([TopicPartition(t, p) for t, p in tps], timeout=timeout)
    group: dict[Key, int | None] = {}
    for tp in found:
        if tp.error is not None:
            raise SourceUnavailable(f"kafka committed offset of {tp.topic}-{tp.partition}: "
                                    f"{tp.error.str()}")
        group[(tp.topic, tp.partition)] = tp.offset if tp.offset >= 0 else None
    return group


def fresh_starts(consumer: Any, fresh: list[Key], starting_position: str,
                 stamp_seconds: float | None, timeout: float) -> dict[Key, int]:
    """Rule 3: earliest, latest, or the first offset at or after AT_TIMESTAMP (the end of
    the log when there is none)."""
    if starting_position != "AT_TIMESTAMP":
        return dict.fromkeys(fresh, _FRESH_STARTS[starting_position])
    stamp_ms = int((stamp_seconds or 0) * 1000)
    hits = consumer.offsets_for_times([TopicPartition(t, p, stamp_ms) for t, p in fresh],
                                      timeout=timeout)
    starts = dict.fromkeys(fresh, OFFSET_END)
    starts.update({(h.topic, h.partition): h.offset for h in hits if h.offset >= 0})
    return starts


def partition_lags(consumer: Any, assigned: Mapping[str, Key], commits: OffsetCommitter,
                   timeout_seconds: float) -> dict[str, float]:
    """Lane -> lag, for the lanes in `assigned`. Raises KafkaException when the broker
    cannot be asked."""
    lags: dict[str, float] = {}
    for lane, tp in list(assigned.items()):
        position = _position(consumer, tp, commits, timeout_seconds)
        end = _log_end(consumer, tp, timeout_seconds)
        if position is not None and end >= 0:
            lags[lane] = float(max(0, end - position))
    return lags


def _position(consumer: Any, tp: Key, commits: OffsetCommitter,
              timeout_seconds: float) -> int | None:
    position = commits.position(tp)
    if position is None:
        (found,) = consumer.committed([TopicPartition(*tp)], timeout=timeout_seconds)
        if found.offset >= 0:
            commits.committed[tp] = found.offset
            position = found.offset
    return position


def _log_end(consumer: Any, tp: Key, timeout_seconds: float) -> int:
    """The high watermark librdkafka learnt from its fetches (free), else asked for."""
    _, high = consumer.get_watermark_offsets(TopicPartition(*tp), cached=True)
    if high < 0:
        _, high = consumer.get_watermark_offsets(TopicPartition(*tp), timeout=timeout_seconds)
    return int(high)
