"""Delay before a retry: exponential, capped, optionally jittered.

AWS does not say how long its pollers wait between retries of a failed batch (ESM-SPEC §4.3
only says the batch is retried); esm waits `RetryBackoff` (an esm extension, see
`esm.config.types.RetryBackoff`) so that a failing target is not hammered. The function is
pure: the random source is injected, so tests pin it with `random.Random(seed)`.
"""

from __future__ import annotations

import random

from esm.config.types import RetryBackoff


def retry_delay(backoff: RetryBackoff, retry_number: int, rng: random.Random,
                at_least: float | None = None) -> float:
    """Seconds to wait before retry `retry_number` (1-based).

    `at_least`: the target's own hint (HTTP `Retry-After`, Lambda's `retryAfterSeconds`):
    the delay is never shorter, except that `maximum_seconds` caps the hint too, so a
    target cannot park a lane for longer than the operator allowed.

    ceiling = min(maximum_seconds, initial_seconds * multiplier ** (retry_number - 1)).
    Without jitter the delay is the ceiling; with jitter it is uniform over
    [ceiling / 2, ceiling], so concurrent lanes spread out while the wait still grows
    (half the ceiling is the floor, unlike "full jitter" over [0, ceiling], so a retry never
    fires at once after a failure).

    Huge retry numbers (maximum_retry_attempts goes to 10000) do not overflow: the ceiling
    saturates at `maximum_seconds`.
    """
    if retry_number < 1:
        raise ValueError(f"retry_number must be 1 or more, got {retry_number}")
    ceiling = _ceiling(backoff, retry_number)
    delay = ceiling if not backoff.jitter or ceiling <= 0 else rng.uniform(ceiling / 2, ceiling)
    if at_least is not None:
        delay = max(delay, min(at_least, backoff.maximum_seconds))
    return delay


def _ceiling(backoff: RetryBackoff, retry_number: int) -> float:
    try:
        raw = backoff.initial_seconds * backoff.multiplier ** (retry_number - 1)
    except OverflowError:
        # float ** int raises instead of returning inf; the cap applies either way.
        raw = float("inf")
    return max(0.0, min(backoff.maximum_seconds, raw))
