"""Delivery tags the source still owes the broker an answer for (pure: no client).

AMQP delivery tags grow by one per delivery on a channel. Every tag is answered exactly once
(acking or rejecting a tag twice closes the channel with PRECONDITION_FAILED), so the book
keeps the unanswered ones in delivery order and hands out what to send:

- `acks(tags)`: the longest run of the oldest unanswered tags that are all being acked goes
  as one `basic.ack(multiple=True)` for its last tag (a batch of 100 is one frame, not
  100); the rest one by one. A tag waiting for its reject is never covered by a multiple
  ack, since it stays unanswered until the reject is sent.
- `schedule_rejects(tags, due)` / `due_rejects(now)`: a failed message goes back with
  `basic.reject(requeue=True)` after the retry back-off (ESM-SPEC §2.6), one by one.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Iterable


class TagBook:
    """Unanswered delivery tags of one channel, and the rejects waiting for their time."""

    def __init__(self) -> None:
        self._open: OrderedDict[int, None] = OrderedDict()
        self._rejects: list[tuple[float, int]] = []  # (due, tag), a heap
        self._rejecting: set[int] = set()

    def __len__(self) -> int:
        return len(self._open)

    def __contains__(self, tag: object) -> bool:
        return tag in self._open and tag not in self._rejecting

    def delivered(self, tag: int) -> None:
        self._open[tag] = None

    def acks(self, tags: Iterable[int]) -> tuple[int | None, list[int]]:
        """(tag for one multiple ack or None, tags to ack singly) for `tags`; tags not
        owed (answered already, or waiting for a reject) are left out."""
        owed, rejecting = self._open, self._rejecting
        wanted = {t for t in tags if t in owed and t not in rejecting}
        run: list[int] = []  # the oldest owed tags, while they are all wanted
        for tag in owed:
            if tag not in wanted:
                break
            run.append(tag)
        for tag in run:
            del owed[tag]
        wanted.difference_update(run)
        last = run[-1] if run else None
        singles = sorted(wanted)
        for tag in singles:
            del self._open[tag]
        return last, singles

    def schedule_rejects(self, tags: Iterable[int], due: float) -> list[int]:
        """Queue rejects for the owed `tags` at monotonic time `due`; the tags queued."""
        queued = [t for t in tags if t in self]
        for tag in queued:
            self._rejecting.add(tag)
            heapq.heappush(self._rejects, (due, tag))
        return queued

    def due_rejects(self, now: float) -> list[int]:
        """Tags whose reject is due at `now`, now answered."""
        out: list[int] = []
        while self._rejects and self._rejects[0][0] <= now:
            _, tag = heapq.heappop(self._rejects)
            self._rejecting.discard(tag)
            self._open.pop(tag, None)
            out.append(tag)
        return out

    def next_reject_at(self) -> float | None:
        return self._rejects[0][0] if self._rejects else None
