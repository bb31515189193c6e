"""Failed deliveries per message, counted by esm, so that `max_deliveries` counts what
failed at the target, not what the broker delivered.

Classic queues only say `redelivered`. Quorum queues count each return in the
`x-delivery-count` header, but every return: a consumer whose connection was lost (a daemon
killed with messages prefetched, never invoked) raises it too, so a few crashes in a row
turned healthy messages into `MaxDeliveriesExceeded` dead letters that no target had ever
seen, or had seen fail once (the damage suite, tests/chaos, found both). So for either
kind esm counts the deliveries that failed at the target itself, keyed by the message's
`messageId` (or, for a message without one, a digest of its queue and body): incremented
when the core returns a message after a failed delivery (not when a stopping mapping hands
back what it never invoked), forgotten when the message is acked. A message's attempt
number is esm's count plus one.

The broker's count stays a bound against crash loops (`attempt_number`): a message
returned more than `CRASH_LOOP_FACTOR` × `max_deliveries` times without a counted failure
is one that takes the daemon down with it every time, and it goes to the on-failure
destination rather than round forever.

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
# Broker returns, as a multiple of max_deliveries, past which a message that never failed
# at the target is dead-lettered anyway (see the module docstring).
CRASH_LOOP_FACTOR = 10


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


def attempt_number(failed: int, returned: int, max_deliveries: int | None) -> int:
    """The delivery attempt this is, as the core counts it against `max_deliveries`:
    1 + the `failed` deliveries esm counted, or, once the broker `returned` the message
    more than the crash-loop bound, the broker's count + 1 (then over max_deliveries)."""
    attempt = 1 + failed
    if max_deliveries is not None and returned > CRASH_LOOP_FACTOR * max_deliveries:
        return max(attempt, returned + 1)
    return attempt


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
