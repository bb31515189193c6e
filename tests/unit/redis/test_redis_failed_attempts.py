"""Redis Streams `max_deliveries` counts failed attempts at the target, not Redis deliveries
(issue: healthy entries dead-lettered after repeated kill -9 with approximateInvokeCount 0).

fakeredis stands in for the server; the real-server check is in
tests/contract/test_redis_streams_contract.py and the damage suite (tests/chaos)."""

from __future__ import annotations

import threading
from collections.abc import Collection

import fakeredis
import pytest
import redis

from connectors.redis.attempts import CRASH_LOOP_FACTOR, failed_attempts_key
from connectors.redis.reclaim import Reclaimer
from connectors.redis.settings import RedisStreamsSettings
from connectors.redis.source import RedisStreamsSource
from esm.clock import FakeClock
from esm.failures.policy import FailurePolicy
from esm.interfaces import ConnectorContext
from esm.records import Batch, DeadLetter, FunctionError
from tests.unit.threads_left import close_after_test


class Listener:
    def lanes_assigned(self, lanes: Collection[str]) -> None:
        pass

    def lanes_revoked(self, lanes: Collection[str]) -> None:
        pass


@pytest.fixture
def client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


def source(client: redis.Redis, name: str, stop: threading.Event | None = None,
           max_deliveries: int | None = 2) -> RedisStreamsSource:
    settings = RedisStreamsSettings(streams=("a",), consumer_name=name,
                                    max_deliveries=max_deliveries)
    context = ConnectorContext("m", stop or threading.Event(), FakeClock())
    src = close_after_test(RedisStreamsSource(settings, context, client=client))
    src.open(Listener())
    return src


def reclaim(client: redis.Redis, name: str, max_deliveries: int | None = 2) -> dict[str, int]:
    """What a fresh replica reclaims at once (visibility 0): entry id → attempt number."""
    claimed = Reclaimer(client, "esm", name, 0, max_deliveries).claim("a", 100, in_flight=())
    return {entry_id: attempt for entry_id, _, _, attempt in claimed}


def test_entries_stranded_by_killed_replicas_keep_attempt_one(
        client: fakeredis.FakeRedis) -> None:
    # Given an entry read ahead by a replica that was killed, then reclaimed by three more
    # replicas that were each killed before invoking it (Redis counts 4 deliveries)
    [entry_id] = [client.xadd("a", {"body": "healthy"}).decode()]
    source(client, "killed-0").poll(10, 0)
    for n in range(1, 4):
        assert reclaim(client, f"killed-{n}") == {entry_id: 1}
    # When the next replica reclaims it, with max_deliveries 2
    attempts = reclaim(client, "survivor")
    # Then it is still attempt 1, and the policy's screen lets it through to the target,
    # while the event still shows Redis's delivery counter
    assert attempts == {entry_id: 1}
    times = client.xpending_range("a", "esm", "-", "+", 1)[0]["times_delivered"]
    assert times == 5
    record = source(client, "c").poll(10, 0)  # nothing new: the entry is pending elsewhere
    assert record == []


def test_failed_attempts_are_counted_and_reach_max_deliveries(
        client: fakeredis.FakeRedis) -> None:
    # Given an entry that failed at the target twice (max_deliveries 2)
    client.xadd("a", {"body": "poison"})
    first = source(client, "c1")
    [record] = first.poll(10, 0)
    first.release([record], 1.0)
    first.poll(10, 0)  # the pipe's replies are read by the next poll
    assert reclaim(client, "c2") == {record.item_id: 2}
    second = source(client, "c2")
    second.release([_reclaimed(second, record.item_id)], 1.0)
    second.poll(10, 0)
    # When it is reclaimed again
    attempts = reclaim(client, "c3")
    # Then it is attempt 3, which the screen dead-letters without invoking
    assert attempts == {record.item_id: 3}
    policy = FailurePolicy("queue", max_deliveries=2)
    reclaimed = _reclaimed(source(client, "c3"), record.item_id)
    steps, rest = policy.screen(Batch("a", (reclaimed,)), now=0.0)
    assert rest is None and isinstance(steps[0], DeadLetter)
    assert steps[0].condition == "MaxDeliveriesExceeded"


def test_ack_forgets_the_failed_attempts(client: fakeredis.FakeRedis) -> None:
    # Given an entry that failed once and came back as attempt 2
    client.xadd("a", {"body": "flaky"})
    first = source(client, "c1")
    [record] = first.poll(10, 0)
    first.release([record], 1.0)
    first.poll(10, 0)
    second = source(client, "c2")
    again = _reclaimed(second, record.item_id)
    assert again.delivery_count == 2
    assert again.payload["attributes"]["deliveryCount"] == "2"
    # When it succeeds and is acked
    second.ack([again])
    second.poll(10, 0)
    # Then nothing is pending and its count is gone
    assert client.hlen(failed_attempts_key("esm", "a")) == 0
    assert client.xpending("a", "esm")["pending"] == 0


def test_records_handed_back_at_shutdown_are_not_failed_attempts(
        client: fakeredis.FakeRedis) -> None:
    # Given a mapping that is stopping and hands back records it never invoked (delay 0)
    client.xadd("a", {"body": "buffered"})
    stop = threading.Event()
    stopping = source(client, "c1", stop)
    records = stopping.poll(10, 0)
    stop.set()
    # When it releases them
    stopping.release(records, 0.0)
    stopping.close()
    # Then no failed attempt was recorded: they come back as attempt 1
    assert client.hlen(failed_attempts_key("esm", "a")) == 0
    assert reclaim(client, "c2") == {records[0].item_id: 1}


def test_a_release_while_running_counts_even_without_delay(
        client: fakeredis.FakeRedis) -> None:
    # Given retry_backoff initial_seconds 0: a failed batch is released with delay 0
    client.xadd("a", {"body": "x"})
    running = source(client, "c1")
    records = running.poll(10, 0)
    running.release(records, 0.0)
    running.poll(10, 0)
    # Then it still counts as a failed attempt
    assert reclaim(client, "c2") == {records[0].item_id: 2}


def test_a_crash_loop_is_bounded_by_redis_deliveries(client: fakeredis.FakeRedis) -> None:
    # Given an entry that took its replica down every time (never a counted failure),
    # delivered more than max_deliveries × CRASH_LOOP_FACTOR times
    [entry_id] = [client.xadd("a", {"body": "kills the daemon"}).decode()]
    source(client, "c0").poll(10, 0)
    bound = 2 * CRASH_LOOP_FACTOR
    for n in range(1, bound):
        assert reclaim(client, f"c{n}") == {entry_id: 1}
    # When it is reclaimed once more
    attempts = reclaim(client, "last")
    # Then the attempt number is Redis's counter, over max_deliveries: it is dead-lettered
    assert attempts == {entry_id: bound + 1}


def test_without_max_deliveries_failures_are_still_counted_for_deliverycount(
        client: fakeredis.FakeRedis) -> None:
    # Given no max_deliveries (nothing is dead-lettered by count)
    client.xadd("a", {"body": "x"})
    running = source(client, "c1", max_deliveries=None)
    records = running.poll(10, 0)
    # When a record fails once
    running.release(records, 1.0)
    running.poll(10, 0)
    # Then it comes back as attempt 2, never over any bound
    assert reclaim(client, "c2", max_deliveries=None) == {records[0].item_id: 2}


def _reclaimed(src: RedisStreamsSource, entry_id: str):  # type: ignore[no-untyped-def]
    """The record `src` hands out for `entry_id` after reclaiming it at once."""
    src._reclaimer._min_idle_ms = 0
    src._reads.next_reclaim = 0.0
    got = [r for r in src.poll(10, 0) if r.item_id == entry_id]
    assert got, f"{entry_id} was not reclaimed"
    return got[0]


def test_function_error_release_goes_through_the_policy_as_a_failed_attempt() -> None:
    """The policy releases a failed record below max_deliveries with a positive delay (the
    backoff), which is how the source tells a failure from a hand-back at shutdown."""
    from esm.records import Record, Release

    record = Record("a", "1-0", "1-0", {}, 2, 0.0, delivery_count=1)
    policy = FailurePolicy("queue", max_deliveries=2)
    steps = policy.decide(Batch("a", (record,)), FunctionError("E", "m"), attempt=0,
                          invoke_count=1, now=0.0)
    assert isinstance(steps[0], Release) and steps[0].delay_seconds > 0
