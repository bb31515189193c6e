"""Pausing Kafka lanes cheaply: records fetched for a lane the core paused are held here,
and the partition is paused in librdkafka only once the holding area is full.

Why: the core pauses a lane whenever a closed batch waits behind the one in flight, and
resumes it as soon as that batch is dispatched: under load, once per batch. librdkafka
drops what it prefetched for a paused partition and on resume fetches it again from the
consumed position, so pausing the client every cycle would fetch (and decode) the same
records again and stall the lane for a fetch round trip each time. Held records are handed
out, in order and before anything newer of their lane, once the lane is resumed.

Memory stays bounded: when the held records of all lanes reach `max_records` or
`max_bytes`, every soft-paused lane is paused in librdkafka too.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from esm.records import Record


class LaneHold:
    """Soft pauses and held records per lane (reader thread only)."""

    # 5000 records: at 1000 the holding area filled within a few batches under load, and
    # every hard pause made librdkafka drop its prefetch and fetch it again (the daemon
    # read at a sixth of the pace it reaches with 5000; tests/bench, cheap commits).
    def __init__(self, max_records: int = 5000, max_bytes: int = 8 * 1024 * 1024) -> None:
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.paused: set[str] = set()  # paused by the core
        self.hard: set[str] = set()  # ...and in librdkafka
        self._held: dict[str, list[Record]] = {}
        self._records = 0
        self._bytes = 0

    def __len__(self) -> int:
        return self._records

    def pause(self, lanes: Iterable[str]) -> None:
        self.paused.update(lanes)

    def resume(self, lanes: Collection[str]) -> None:
        self.paused.difference_update(lanes)

    def to_resume_hard(self) -> list[str]:
        """Lanes paused in librdkafka that the core resumed and whose held records have
        all been handed out (now unmarked): librdkafka then fetches on from after the last
        of them (its consumed position)."""
        lanes = [lane for lane in self.hard if lane not in self.paused and lane not in self._held]
        self.hard.difference_update(lanes)
        return lanes

    def waiting(self, lane: str) -> bool:
        """True when new records of `lane` must queue here: paused, or behind held ones."""
        return lane in self.paused or lane in self._held

    def hold(self, lane: str, records: list[Record]) -> None:
        if not records:
            return
        self._held.setdefault(lane, []).extend(records)
        self._records += len(records)
        self._bytes += sum(r.size_bytes for r in records)

    def to_pause_hard(self) -> list[str]:
        """Once full: the soft-paused lanes not yet paused in librdkafka (now marked)."""
        if self._records < self.max_records and self._bytes < self.max_bytes:
            return []
        lanes = sorted(self.paused - self.hard)
        self.hard.update(lanes)
        return lanes

    def release(self, room: int) -> list[Record]:
        """Up to `room` held records of unpaused lanes, oldest first per lane."""
        out: list[Record] = []
        for lane in [lane for lane in self._held if lane not in self.paused]:
            if len(out) >= room:
                break
            held = self._held[lane]
            take = held[:room - len(out)]
            out.extend(take)
            if len(take) == len(held):
                del self._held[lane]
            else:
                del held[:len(take)]
            self._records -= len(take)
            self._bytes -= sum(r.size_bytes for r in take)
        return out

    def forget(self, lanes: Iterable[str]) -> None:
        """Revoked lanes: drop their held records (never acked: whoever owns the lane next
        reads them again from the group's committed offset, positions.py)."""
        for lane in lanes:
            self.paused.discard(lane)
            self.hard.discard(lane)
            held = self._held.pop(lane, [])
            self._records -= len(held)
            self._bytes -= sum(r.size_bytes for r in held)
