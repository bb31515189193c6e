"""Keep the entries a replica holds from going idle, so no other replica reclaims them.

Why: a pending entry idle for `visibility_timeout_seconds` is reclaimed by XAUTOCLAIM, by
this replica or another. This replica never delivers an entry it still holds a second time
(`Reclaimer`), but another replica does: an entry waiting here behind a busy target (read
ahead, waiting for a lane, or in a slow invocation) is invoked twice, once per replica.
The same fix as for SQS's visibility timeout (connectors/sqs/visibility.py): while this
replica holds an entry, a keeper thread claims it again for this consumer before it has been
idle half the timeout, which resets its idle time.

How: every quarter timeout the keeper copies the held ids (the reader's sets, copied whole
under the GIL) and sends `XCLAIM stream group consumer <half the timeout> ids... JUSTID`.
Redis itself picks the entries idle at least half the timeout, so the keeper keeps no clock
per entry and the reader's hot path pays nothing. JUSTID leaves the delivery counter alone.
An entry acked meanwhile is no longer pending and XCLAIM skips it; one released meanwhile
may have its idle time reset once more, which delays its redelivery by less than a quarter
timeout. A replica killed with entries held stops claiming them: they go idle and are
reclaimed after the timeout, as before.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import redis

from connectors.holding.ticker import Ticker

log = logging.getLogger(__name__)

CHUNK = 1000  # ids per XCLAIM
WARN_EVERY_SECONDS = 30.0


class PendingKeeper:
    """Resets the idle time of the entries in `held` (stream -> ids) every quarter timeout."""

    def __init__(self, client: redis.Redis, group: str, consumer: str,
                 visibility_timeout_seconds: float, held: Mapping[str, set[str]]) -> None:
        self._client = client
        self._group = group
        self._consumer = consumer
        self._min_idle_ms = max(1, int(visibility_timeout_seconds * 1000 / 2))
        self.tick_seconds = max(0.1, visibility_timeout_seconds / 4)
        self._held = held
        self._ticker: Ticker | None = None
        self._warned_at = 0.0
        self.claimed = 0  # entries whose idle time was reset so far (tests, logs)

    def start(self, name: str) -> None:
        self._ticker = Ticker(name, self.tick_seconds, self._tick)
        self._ticker.start()

    def close(self) -> None:
        if self._ticker is not None:
            self._ticker.close()

    def _tick(self) -> None:
        try:
            self.keep()
        except redis.RedisError as exc:  # the reader sees the outage too; try again
            self._warn(f"could not reset the idle time of held entries: {exc}")

    def keep(self) -> int:
        """One pass: XCLAIM every held entry idle for half the timeout. Returns how many."""
        claimed = 0
        for stream, ids in list(self._held.items()):
            snapshot: list[Any] = list(ids.copy())  # copied whole under the GIL
            for start in range(0, len(snapshot), CHUNK):
                reply = self._client.xclaim(stream, self._group, self._consumer,
                                            self._min_idle_ms, snapshot[start:start + CHUNK],
                                            justid=True)
                claimed += len(reply or ())
        self.claimed += claimed
        return claimed

    def _warn(self, text: str) -> None:
        now = time.monotonic()
        if not self._warned_at or now - self._warned_at >= WARN_EVERY_SECONDS:
            self._warned_at = now
            log.warning("redis_streams keeper for group %s: %s", self._group, text)
