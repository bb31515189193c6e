"""Which lane each delivery goes to (pure: no client).

With concurrency 1 (AWS's limit for RabbitMQ, ESM-SPEC §2.6) a queue is one lane, named
after the queue, so one batch per queue is in flight. With `maximum_concurrency` N > 1 each
queue has N slot lanes, `<queue>#slot-<i>`; deliveries go to one slot in runs of
`batch_size` (a run fills one batch instead of N slow ones), then to the next unpaused
slot. A paused lane takes nothing; a queue whose lanes are all paused is not handed out.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence


class SlotPlan:
    """Lanes of each queue and the slot the next delivery of a queue goes to."""

    def __init__(self, queues: Sequence[str], concurrency: int, batch_size: int) -> None:
        slots = max(1, concurrency)
        self._lanes = {q: ([q] if slots == 1 else [f"{q}#slot-{i}" for i in range(slots)])
                       for q in queues}
        self._run = max(1, batch_size)
        self._current = dict.fromkeys(queues, 0)
        self._given = dict.fromkeys(queues, 0)  # deliveries given to the current slot
        self._paused: set[str] = set()

    @property
    def lanes(self) -> list[str]:
        return [lane for lanes in self._lanes.values() for lane in lanes]

    def pause(self, lanes: Collection[str]) -> None:
        self._paused.update(lanes)

    def resume(self, lanes: Collection[str]) -> None:
        self._paused.difference_update(lanes)

    def all_paused(self) -> bool:
        return not self.open_queues()

    def open_queues(self) -> list[str]:
        """Queues with at least one unpaused lane, in configuration order."""
        return [q for q, lanes in self._lanes.items()
                if any(lane not in self._paused for lane in lanes)]

    def next_lane(self, queue: str) -> str | None:
        """The lane for the next delivery of `queue`, or None when all its lanes pause."""
        lanes = self._lanes[queue]
        index = self._current[queue]
        if self._given[queue] >= self._run or lanes[index] in self._paused:
            for step in range(1, len(lanes) + 1):
                candidate = (index + step) % len(lanes)
                if lanes[candidate] not in self._paused:
                    self._current[queue], self._given[queue] = candidate, 0
                    break
            else:
                return None
        self._given[queue] += 1
        return lanes[self._current[queue]]

    def lane_run(self, queue: str, limit: int) -> tuple[str | None, int]:
        """The lane for the next deliveries of `queue` and how many of the next `limit` go
        to it in a row (`next_lane` for each of them, in one call); (None, 0) when all its
        lanes pause."""
        lane = self.next_lane(queue)
        if lane is None:
            return None, 0
        more = max(0, min(limit - 1, self._run - self._given[queue]))
        self._given[queue] += more
        return lane, 1 + more
