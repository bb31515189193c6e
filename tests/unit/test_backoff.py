"""esm.failures.backoff.retry_delay: exponential, capped, jittered over the upper half."""

from __future__ import annotations

import random

import pytest

from esm.config.types import RetryBackoff
from esm.failures.backoff import retry_delay

NO_JITTER = RetryBackoff(initial_seconds=1.0, maximum_seconds=60.0, multiplier=2.0, jitter=False)


@pytest.mark.parametrize(
    ("retry_number", "expected"),
    [(1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0), (7, 60.0), (50, 60.0)],
)
def test_delay_doubles_per_retry_until_the_maximum(retry_number: int, expected: float) -> None:
    # Given a backoff without jitter / When asking for retry n / Then initial * 2**(n-1), capped
    assert retry_delay(NO_JITTER, retry_number, random.Random(0)) == expected


def test_huge_retry_numbers_saturate_at_the_maximum_instead_of_overflowing() -> None:
    # Given maximum_retry_attempts can reach 10000 / When the exponent overflows a float
    delay = retry_delay(NO_JITTER, 10_000, random.Random(0))
    # Then the cap applies
    assert delay == 60.0


@pytest.mark.parametrize("retry_number", [1, 2, 3, 4, 5, 6, 7, 8, 20])
def test_jitter_stays_within_the_upper_half_of_the_ceiling(retry_number: int) -> None:
    # Given a jittered backoff
    backoff = RetryBackoff(initial_seconds=0.5, maximum_seconds=30.0, multiplier=3.0, jitter=True)
    ceiling = min(30.0, 0.5 * 3.0 ** (retry_number - 1))
    rng = random.Random(retry_number)
    # When drawing many delays
    delays = [retry_delay(backoff, retry_number, rng) for _ in range(500)]
    # Then every one lies in [ceiling/2, ceiling], and they actually vary
    assert all(ceiling / 2 <= d <= ceiling for d in delays)
    assert len(set(delays)) > 100


def test_jitter_is_reproducible_with_the_same_seed() -> None:
    # Given two generators with one seed / When drawing the same retries / Then same delays
    backoff = RetryBackoff(jitter=True)
    first = [retry_delay(backoff, n, random.Random(7)) for n in range(1, 10)]
    second = [retry_delay(backoff, n, random.Random(7)) for n in range(1, 10)]
    assert first == second


def test_multiplier_of_one_gives_a_constant_delay() -> None:
    backoff = RetryBackoff(initial_seconds=5.0, maximum_seconds=60.0, multiplier=1.0, jitter=False)
    assert [retry_delay(backoff, n, random.Random()) for n in (1, 2, 10)] == [5.0, 5.0, 5.0]


def test_zero_initial_delay_means_retry_at_once_even_with_jitter() -> None:
    backoff = RetryBackoff(initial_seconds=0.0, maximum_seconds=60.0, jitter=True)
    assert retry_delay(backoff, 3, random.Random(1)) == 0.0


@pytest.mark.parametrize("retry_number", [0, -1])
def test_retry_numbers_start_at_one(retry_number: int) -> None:
    # When asking for a retry number below 1 / Then a clear error names the value
    with pytest.raises(ValueError, match=f"retry_number must be 1 or more, got {retry_number}"):
        retry_delay(NO_JITTER, retry_number, random.Random())
