"""Failed attempts per message, counted by the reader, so that a source's delivery limit
counts what failed at the target rather than what the broker delivered.

Why: SQS raises `ApproximateReceiveCount` on every receive, and ActiveMQ raises a message's
delivery-count on every return, a lost connection's included. A daemon killed with messages
received and not yet invoked (read ahead, or prefetched on the link) hands them back with a
higher count, so a few crashes in a row turned healthy messages into `MaxDeliveriesExceeded`
dead letters no target had ever seen, or had seen fail fewer times than the limit (the
damage suite, tests/chaos, measured 3 on an SQS standard queue and 29 on a FIFO queue in 20
kills, and 9 on ActiveMQ in 3).

The broker has nowhere to keep a count beside the message, so it is kept here, in memory,
keyed by message id: incremented when the core releases a message after a failed delivery,
dropped when it is acked. A record's `delivery_count` is then `1 + failed attempts`. A count
lost with a restart, or evicted past `max_messages`, errs towards more deliveries, never
towards a dead letter. The broker's own count stays a bound against crash loops: a message
delivered `CRASH_LOOP_FACTOR` × `limit` times without a counted failure (one that takes the
daemon down every time) is dead-lettered rather than delivered forever.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

CRASH_LOOP_FACTOR = 10


class FailedAttempts:
    """Message id → failed attempts at the target; reader thread only."""

    def __init__(self, limit: int | None, max_messages: int = 100_000) -> None:
        self._limit = limit
        self._max_messages = max_messages
        self._failed: OrderedDict[str, int] = OrderedDict()

    def delivery_count(self, message_id: str, broker_count: int) -> int:
        """The attempt this delivery is, as the core counts it against the limit
        (`broker_count`: this delivery's number as the broker counts them, from 1)."""
        attempt = 1 + self._failed.get(message_id, 0)
        if self._limit is not None and broker_count > self._limit * CRASH_LOOP_FACTOR:
            return max(attempt, broker_count)
        return attempt

    def failed(self, message_ids: Iterable[str]) -> None:
        for message_id in message_ids:
            self._failed[message_id] = self._failed.pop(message_id, 0) + 1
        while len(self._failed) > self._max_messages:
            self._failed.popitem(last=False)  # the oldest count: errs towards a delivery

    def finished(self, message_ids: Iterable[str]) -> None:
        for message_id in message_ids:
            self._failed.pop(message_id, None)
