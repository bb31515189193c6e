"""Failed attempts per message, counted by this reader, so that `max_receive_count` counts
what failed at the target rather than what SQS delivered.

Why: SQS raises `ApproximateReceiveCount` on every receive. A daemon killed with messages
received and not yet invoked (its pollers read ahead) leaves them in flight; they come back
after the visibility timeout with a higher count, so a few crashes in a row turned healthy
messages into `MaxDeliveriesExceeded` dead letters no target had ever seen (the damage
suite, tests/chaos, measured 3 on a standard queue and 29 on a FIFO queue in 20 kills).

SQS has nowhere to keep a count beside the message, so it is kept here, in memory, keyed by
message id: incremented when the core releases a message after a failed delivery, dropped
when it is acked. A record's `delivery_count` is then `1 + failed attempts`. A count lost
with a restart, or evicted past `max_messages`, errs towards more deliveries, never towards
a dead letter. SQS's own count stays a bound against crash loops: a message received
`CRASH_LOOP_FACTOR` × `max_receive_count` times without a counted failure (one that takes
the daemon down every time) is dead-lettered rather than received forever.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

CRASH_LOOP_FACTOR = 10


class FailedAttempts:
    """Message id → failed attempts at the target; reader thread only."""

    def __init__(self, max_receive_count: int | None, max_messages: int = 100_000) -> None:
        self._limit = max_receive_count
        self._max_messages = max_messages
        self._failed: OrderedDict[str, int] = OrderedDict()

    def delivery_count(self, message_id: str, receive_count: int) -> int:
        """The attempt this delivery is, as the core counts it against the limit."""
        attempt = 1 + self._failed.get(message_id, 0)
        if self._limit is not None and receive_count > self._limit * CRASH_LOOP_FACTOR:
            return max(attempt, receive_count)
        return attempt

    def failed(self, message_ids: Iterable[str]) -> None:
        for message_id in message_ids:
            self._failed[message_id] = self._failed.pop(message_id, 0) + 1
        while len(self._failed) > self._max_messages:
            self._failed.popitem(last=False)  # the oldest count: errs towards a delivery

    def finished(self, message_ids: Iterable[str]) -> None:
        for message_id in message_ids:
            self._failed.pop(message_id, None)
