"""Reclaim pending entries that sat idle past the visibility timeout (XAUTOCLAIM).

Entries become idle-pending when a replica crashed holding them, or when the core released
them after a failure (DESIGN §3). XAUTOCLAIM moves them to this consumer and increments
their delivery counter. The attempt number handed to the core is 1 + the failed attempts
esm recorded (`redis_attempts`), so the core dead-letters at `max_deliveries` failed
attempts; Redis's counter (XPENDING) only bounds a crash loop. The scan cursor is kept per
stream, so a large pending list is walked a slice at a time instead of from the start on
every poll.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

import redis

from connectors.redis.attempts import (
    attempt_number,
    failed_attempts_key,
)
from connectors.redis.entries import text as _text

log = logging.getLogger(__name__)

_START = "0-0"


class Reclaimer:
    """XAUTOCLAIM + attempt numbers for one consumer of one group."""

    def __init__(self, client: redis.Redis, group: str, consumer: str,
                 visibility_timeout_seconds: int, max_deliveries: int | None = None) -> None:
        self._client = client
        self._group = group
        self._consumer = consumer
        self._min_idle_ms = visibility_timeout_seconds * 1000
        self._max_deliveries = max_deliveries
        self._cursors: dict[str, str] = {}

    def claim(self, stream: str, count: int,
              in_flight: Collection[str]) -> list[tuple[str, Any, int, int]]:
        """(entry id, raw fields, Redis's delivery counter, attempt number) for entries
        claimed now. Entries this
        replica still has in flight (`in_flight`) are claimed, which resets their idle
        time, but not yielded again."""
        reply = self._client.xautoclaim(
            stream, self._group, self._consumer, self._min_idle_ms,
            start_id=self._cursors.get(stream, _START), count=count)
        cursor, entries = _text(reply[0]), reply[1]
        self._cursors[stream] = cursor
        if len(reply) > 2 and reply[2]:
            # Redis 7 drops entries deleted from the stream (XDEL, MAXLEN) from the pending
            # list here: nothing is left to deliver or ack for them.
            log.warning("redis_streams: %d pending entries of %s were deleted from the "
                        "stream before delivery", len(reply[2]), stream)
            self._client.hdel(failed_attempts_key(self._group, stream),
                              *[_text(i) for i in reply[2]])
        claimed = [(_text(raw_id), fields) for raw_id, fields in entries
                   if fields is not None and _text(raw_id) not in in_flight]
        if not claimed:
            return []
        ids = [entry_id for entry_id, _ in claimed]
        counts, failed = self._counts(stream, ids)
        # An id missing from XPENDING was acked or claimed by another replica since the
        # XAUTOCLAIM: it is no longer ours to deliver.
        return [(entry_id, fields, counts[entry_id],
                 attempt_number(failed[entry_id], counts[entry_id], self._max_deliveries))
                for entry_id, fields in claimed if entry_id in counts]

    def _counts(self, stream: str, ids: list[str]) -> tuple[dict[str, int], dict[str, Any]]:
        """(Redis's delivery counter, esm's failed attempts or None) per entry id."""
        pipe = self._client.pipeline(transaction=False)
        for entry_id in ids:
            pipe.xpending_range(stream, self._group, min=entry_id, max=entry_id, count=1,
                                consumername=self._consumer)
        pipe.hmget(failed_attempts_key(self._group, stream), ids)
        *pending, failed = pipe.execute()
        counts: dict[str, int] = {}
        for rows in pending:
            for row in rows:
                counts[_text(row["message_id"])] = int(row["times_delivered"])
        return counts, dict(zip(ids, failed, strict=True))
