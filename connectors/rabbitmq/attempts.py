"""Failed deliveries per message, counted by esm for queues that do not count them.

Quorum queues tell each redelivery's count in the `x-delivery-count` header; classic queues
only say `redelivered`. For `max_deliveries` on those, esm counts the deliveries that
failed at the target itself, keyed by the message's `messageId` (or, for a message without
one, a digest of its queue and body): incremented when the core returns a message after a
failed delivery (not when a stopping mapping hands back what it never invoked), forgotten
when the message is acked. A message's attempt number is the larger of the broker's count
and esm's, plus one.

The counts live in the source, so they are lost when the reader reconnects or the daemon
restarts: a lost count errs towards one more delivery, never towards a dead letter. They are
bounded (`capacity`, oldest forgotten first), so memory stays bounded by configuration
whatever the backlog.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

from esm.records import Record

DEFAULT_CAPACITY = 100_000


def count_key(queue_key: str, message_id: str | None, data: str) -> str:
    """What esm counts failed deliveries by: the message id, else a digest of the queue
    and the body (`data`, the event's base64 of it)."""
    if message_id:
        return f"id:{message_id}"
    digest = hashlib.blake2b(data.encode("ascii"), digest_size=16, person=b"esm-rmq")
    digest.update(queue_key.encode())
    return f"body:{digest.hexdigest()}"


def record_count_key(record: Record) -> str:
    """`count_key` of a record this source built (its payload is the event's message)."""
    payload = record.payload
    return count_key(record.handle.key, payload["basicProperties"]["messageId"],
                     payload["data"])


def broker_count(headers: Mapping[str, Any] | None) -> int:
    """Earlier deliveries as the broker counts them (`x-delivery-count`, quorum queues)."""
    if not headers:
        return 0
    value = headers.get("x-delivery-count")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


class FailedDeliveries:
    """A bounded key → failed deliveries table (see the module docstring)."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._capacity = capacity
        self._counts: OrderedDict[str, int] = OrderedDict()

    def __len__(self) -> int:
        return len(self._counts)

    def get(self, key: str) -> int:
        return self._counts.get(key, 0)

    def failed(self, key: str) -> None:
        self._counts[key] = self._counts.get(key, 0) + 1
        self._counts.move_to_end(key)
        while len(self._counts) > self._capacity:
            self._counts.popitem(last=False)

    def forget(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._counts.pop(key, None)
