"""Token buckets in front of the target (`rate_limit: {records_per_second,
invocations_per_second, burst}`), an esm extension: the lane worker asks for its turn before
every invocation and waits for it on the injected clock, so a stop ends the wait at once.

A bucket is a reservation ledger, not a poll loop: `reserve(n)` takes n tokens at once,
letting the balance go negative, and answers how long the caller must wait for the tokens
it took to have been earned. Concurrent lanes thus queue up in arrival order with no
wake-ups and no busy waiting, and a batch larger than the burst still goes (it just waits
longer). While lanes wait their batches stay in flight: the reader's back-pressure pauses
those lanes at the source (DESIGN §2), so waiting costs no memory.

`RateLimiters` hands out one limiter per mapping, or one per `rate_limit_group` shared by
every mapping naming it (one service behind several topics).
"""

from __future__ import annotations

import math
import threading

from esm.config.types import MappingConfig, RateLimit
from esm.interfaces import Clock


class TokenBucket:
    """`rate` tokens per second, holding at most `capacity`; thread-safe."""

    def __init__(self, rate: float, capacity: float, clock: Clock) -> None:
        if rate <= 0 or capacity <= 0:
            raise ValueError(f"a token bucket needs rate > 0 and capacity > 0, "
                             f"got rate={rate}, capacity={capacity}")
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._tokens = capacity  # full: the first burst goes at once
        self._stamp = clock.monotonic()
        self._lock = threading.Lock()

    def reserve(self, tokens: float) -> float:
        """Take `tokens` now; seconds until they are earned (0 when they were there)."""
        with self._lock:
            now = self._clock.monotonic()
            earned = (now - self._stamp) * self.rate
            self._stamp = now
            self._tokens = min(self.capacity, self._tokens + earned) - tokens
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


class RateLimiter:
    """The buckets of one mapping or group: one for invocations, one for records."""

    def __init__(self, limit: RateLimit, clock: Clock) -> None:
        self.limit = limit
        self._clock = clock
        self._buckets: list[tuple[TokenBucket, bool]] = []  # (bucket, counts records)
        for rate, per_record in ((limit.invocations_per_second, False),
                                 (limit.records_per_second, True)):
            if rate is not None:
                capacity = limit.burst if limit.burst is not None else max(1, math.ceil(rate))
                self._buckets.append((TokenBucket(rate, capacity, clock), per_record))

    def wait_turn(self, records: int, stop: threading.Event) -> tuple[bool, float]:
        """Take one invocation and `records` records, then wait until both are earned.
        Returns (False if `stop` was set during the wait, seconds waited)."""
        wait = max((bucket.reserve(records if per_record else 1)
                    for bucket, per_record in self._buckets), default=0.0)
        if wait <= 0:
            return True, 0.0
        return not self._clock.wait(stop, wait), wait


class RateLimiters:
    """The daemon's limiters: one per mapping, or one per `rate_limit_group` shared by the
    mappings that name it. A limiter survives a reload of its mappings while its limits are
    unchanged, so reloading does not reset the budget. Called under the daemon's lock."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._limiters: dict[str, RateLimiter] = {}

    def for_mapping(self, mapping: MappingConfig) -> RateLimiter | None:
        limit = mapping.rate_limit
        if limit is None:
            return None
        key = f"group:{mapping.rate_limit_group}" if mapping.rate_limit_group \
            else f"mapping:{mapping.name}"
        limiter = self._limiters.get(key)
        if limiter is None or limiter.limit != limit:
            limiter = self._limiters[key] = RateLimiter(limit, self._clock)
        return limiter
