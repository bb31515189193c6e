"""Contract: RedisStreamsSource and the redis_stream destination against a real redis-server.

The Source is driven directly, as the reader thread would (poll / ack / release); two
instances in one group are two replicas; close + a new instance is a daemon restart.
Visibility timeouts are 1 s, so redelivery tests wait a little over a second.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Collection, Iterator

import orjson
import pytest
import redis

from connectors.redis.destination import (
    RedisStreamDestination,
    RedisStreamDestinationSettings,
)
from connectors.redis.settings import RedisStreamsSettings
from connectors.redis.source import RedisStreamsSource
from esm.clock import SystemClock
from esm.errors import DestinationError, SourceUnavailable
from esm.interfaces import ConnectorContext
from esm.records import Record
from tests.servers.redis_server import RedisServer, redis_server  # noqa: F401

VISIBILITY = 1


class Listener:
    def lanes_assigned(self, lanes: Collection[str]) -> None:
        pass

    def lanes_revoked(self, lanes: Collection[str]) -> None:
        pass


def context() -> ConnectorContext:
    return ConnectorContext("contract", threading.Event(), SystemClock())


@pytest.fixture
def streams() -> tuple[str, str]:
    tag = uuid.uuid4().hex[:8]
    return (f"orders-{tag}", f"refunds-{tag}")


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:  # noqa: F811
    conn = redis.Redis.from_url(redis_server.url)
    yield conn
    conn.close()


def open_source(url: str, streams: tuple[str, ...], **overrides: object) -> RedisStreamsSource:
    values: dict[str, object] = {"streams": streams, "url": url,
                                 "visibility_timeout_seconds": VISIBILITY,
                                 "block_milliseconds": 100}
    values.update(overrides)
    source = RedisStreamsSource(RedisStreamsSettings(**values), context())  # type: ignore[arg-type]
    source.open(Listener())
    return source


def produce(client: redis.Redis, stream: str, count: int) -> list[str]:
    pipe = client.pipeline(transaction=False)
    for n in range(count):
        pipe.xadd(stream, {"body": orjson.dumps({"n": n})})
    return [entry_id.decode() for entry_id in pipe.execute()]


def drain(source: RedisStreamsSource, want: int, seconds: float = 5.0) -> list[Record]:
    """Poll until `want` records arrived or `seconds` passed."""
    got: list[Record] = []
    deadline = time.monotonic() + seconds
    while len(got) < want and time.monotonic() < deadline:
        got.extend(source.poll(want - len(got), 0.2))
    return got


def pending_ids(client: redis.Redis, stream: str) -> set[str]:
    rows = client.xpending_range(stream, "esm", "-", "+", 10_000)
    return {row["message_id"].decode() for row in rows}


def test_poll_returns_what_was_produced_in_order_per_stream(
        redis_server: RedisServer, client: redis.Redis,  # noqa: F811
        streams: tuple[str, str]) -> None:
    # Given 60 entries on each of two streams
    produced = {s: produce(client, s, 60) for s in streams}
    source = open_source(redis_server.url, streams)
    # When polling in batches of 25
    records = drain(source, 120)
    # Then every entry arrives once, in stream order, with its body
    for stream in streams:
        mine = [r for r in records if r.lane == stream]
        assert [r.item_id for r in mine] == produced[stream]
        assert [orjson.loads(r.payload["body"])["n"] for r in mine] == list(range(60))
    source.close()


def test_acked_entries_are_never_redelivered(
        redis_server: RedisServer, client: redis.Redis,  # noqa: F811
        streams: tuple[str, str]) -> None:
    produce(client, streams[0], 10)
    source = open_source(redis_server.url, streams[:1])
    source.ack(drain(source, 10))
    # When more than the visibility timeout passes, for this replica and a new one
    time.sleep(VISIBILITY + 0.2)
    other = open_source(redis_server.url, streams[:1], consumer_name="other")
    # Then nothing comes back and nothing is pending
    assert drain(source, 1, 1.0) == [] and drain(other, 1, 1.0) == []
    assert pending_ids(client, streams[0]) == set()
    source.close()
    other.close()


def test_released_entries_come_back_after_the_visibility_timeout(
        redis_server: RedisServer, client: redis.Redis,  # noqa: F811
        streams: tuple[str, str]) -> None:
    ids = produce(client, streams[0], 3)
    source = open_source(redis_server.url, streams[:1])
    first = drain(source, 3)
    # When the core releases the middle one (a failed record) and acks the rest
    source.release([first[1]], 0)
    source.ack([first[0], first[2]])
    released_at = time.monotonic()
    # Then it is redelivered, with delivery count 2, only after the visibility timeout
    again = drain(source, 1, 4.0)
    assert time.monotonic() - released_at >= VISIBILITY - 0.05
    assert [(r.item_id, r.delivery_count) for r in again] == [(ids[1], 2)]
    assert again[0].payload["attributes"]["deliveryCount"] == "2"
    source.close()


def test_max_deliveries_sends_a_notice_then_acks(
        redis_server: RedisServer, client: redis.Redis,  # noqa: F811
        streams: tuple[str, str]) -> None:
    # Given max_deliveries 2 and an entry that always fails
    [entry_id] = produce(client, streams[0], 1)
    source = open_source(redis_server.url, streams[:1], max_deliveries=2)
    dlq = f"{streams[0]}-dlq"
    destination = RedisStreamDestination(
        RedisStreamDestinationSettings(stream=dlq, url=redis_server.url), context())
    record = drain(source, 1)[0]
    source.release([record], 0)
    record = drain(source, 1, 4.0)[0]
    # When it reached max_deliveries the core dead-letters: notice, then ack
    assert record.delivery_count == 2 == source.settings.max_deliveries
    notice = {"requestContext": {"condition": "MaxDeliveriesExceeded"},
              "RedisStreamBatchInfo": source.batch_info([record])}
    destination.send(notice, [record])
    source.ack([record])
    # Then the notice is in the destination stream and the entry is finished
    [(_, fields)] = client.xrange(dlq)
    assert orjson.loads(fields[b"body"])["RedisStreamBatchInfo"]["startMessageId"] == entry_id
    assert pending_ids(client, streams[0]) == set()
    time.sleep(VISIBILITY + 0.2)
    assert drain(source, 1, 1.0) == []
    source.close()
    destination.close()


def test_two_replicas_split_the_work_without_overlap(
        redis_server: RedisServer, client: redis.Redis,  # noqa: F811
        streams: tuple[str, str]) -> None:
    ids = produce(client, streams[0], 200)
    a = open_source(redis_server.url, streams[:1], consumer_name="replica-a")
    b = open_source(redis_server.url, streams[:1], consumer_name="replica-b")
    seen: dict[str, list[str]] = {"a": [], "b": []}
    deadline = time.monotonic() + 10
    while len(seen["a"]) + len(seen["b"]) < 200 and time.monotonic() < deadline:
        for name, source in (("a", a), ("b", b)):
            records = source.poll(10, 0.05)
            source.ack(records)
            seen[name].extend(r.item_id for r in records)
    # Then both worked, no entry went to both, and together they saw everything
    assert seen["a"] and seen["b"]
    assert not set(seen["a"]) & set(seen["b"])
    assert sorted(seen["a"] + seen["b"]) == sorted(ids)
    a.close()
    b.close()


def test_a_crashed_replicas_entries_are_reclaimed_by_another(
        redis_server: RedisServer, client: redis.Redis,  # noqa: F811
        streams: tuple[str, str]) -> None:
    ids = produce(client, streams[0], 5)
    # A replica that dies holding entries stops claiming them: its keeper dies with it
    crashed = open_source(redis_server.url, streams[:1], consumer_name="crashed",
                          extend_visibility=False)
    assert len(drain(crashed, 5)) == 5  # read, never acked: the process dies here
    survivor = open_source(redis_server.url, streams[:1], consumer_name="survivor")
    assert drain(survivor, 1, 0.3) == []  # not before the visibility timeout
    reclaimed = drain(survivor, 5, 5.0)
    assert [r.item_id for r in reclaimed] == ids
    # Redis delivered them twice, but no target ever failed them: still attempt 1, so a
    # crash does not bring them closer to max_deliveries
    assert {r.delivery_count for r in reclaimed} == {1}
    assert {r.payload["attributes"]["deliveryCount"] for r in reclaimed} == {"2"}
    survivor.ack(reclaimed)
    assert pending_ids(client, streams[0]) == set()
    survivor.close()


def test_entries_a_live_replica_holds_are_not_reclaimed_by_another(
        redis_server: RedisServer, client: redis.Redis,  # noqa: F811
        streams: tuple[str, str]) -> None:
    # Given a replica holding 5 entries it has not settled yet (a busy target)
    ids = produce(client, streams[0], 5)
    holder = open_source(redis_server.url, streams[:1], consumer_name="holder")
    held = drain(holder, 5)
    # When another replica polls for more than twice the visibility timeout
    other = open_source(redis_server.url, streams[:1], consumer_name="other")
    # Then it reclaims none of them: the holder's keeper keeps them from going idle
    assert drain(other, 1, 2.5 * VISIBILITY) == []
    holder.ack(held)
    assert [r.item_id for r in held] == ids and pending_ids(client, streams[0]) == set()
    holder.close()
    other.close()


def test_restart_resumes_after_the_last_ack(
        redis_server: RedisServer, client: redis.Redis,  # noqa: F811
        streams: tuple[str, str]) -> None:
    ids = produce(client, streams[0], 10)
    first = open_source(redis_server.url, streams[:1], consumer_name="daemon")
    got = drain(first, 6)
    first.ack(got[:4])  # 4 done, 2 in flight when the daemon stops
    first.close()
    # When the daemon starts again (same group) and more entries arrive
    later = produce(client, streams[0], 2)
    again = open_source(redis_server.url, streams[:1], consumer_name="daemon")
    records = drain(again, 8, 5.0)
    # Then it gets the unread and the in-flight entries, never the acked ones
    assert sorted(r.item_id for r in records) == sorted(ids[4:] + later)
    assert not {r.item_id for r in records} & set(ids[:4])
    again.close()


def test_broker_restart_surfaces_as_unavailable_and_loses_nothing(
        streams: tuple[str, str]) -> None:
    # Given a dedicated server (AOF on) and a source half-way through a stream
    server = RedisServer()
    server.start()
    try:
        conn = redis.Redis.from_url(server.url)
        ids = produce(conn, streams[0], 6)
        source = open_source(server.url, streams[:1], consumer_name="r")
        done = drain(source, 3)
        source.ack(done)
        # When Redis stops, the source reports it (once it has handed out what it had
        # already read); when Redis is back, a new source goes on
        server.stop()
        with pytest.raises(SourceUnavailable):
            for _ in range(5):
                source.poll(10, 0.1)
        source.close()
        server.start()
        fresh = open_source(server.url, streams[:1], consumer_name="r")
        rest = drain(fresh, 3, 5.0)
        assert [r.item_id for r in rest] == ids[3:]
        assert {r.item_id for r in done} == set(ids[:3])
        fresh.ack(rest)
        fresh.close()
        conn.close()
    finally:
        server.cleanup()


def test_lag_is_undelivered_plus_pending(
        redis_server: RedisServer, client: redis.Redis,  # noqa: F811
        streams: tuple[str, str]) -> None:
    produce(client, streams[0], 7)
    source = open_source(redis_server.url, streams)
    got = drain(source, 3)
    source.ack(got[:1])
    assert source.lag() == {streams[0]: 6.0, streams[1]: 0.0}
    source.close()


def test_binary_field_values_arrive_base64_encoded(
        redis_server: RedisServer, client: redis.Redis,  # noqa: F811
        streams: tuple[str, str]) -> None:
    client.xadd(streams[0], {"body": b"\x80\x81", "kind": "raw"})
    source = open_source(redis_server.url, streams[:1])
    [record] = drain(source, 1)
    assert record.payload["fields"] == {"body": "gIE=", "kind": "raw"}
    assert record.payload["attributes"]["binaryFields"] == ["body"]
    source.close()


def test_destination_refuses_when_replicas_do_not_acknowledge(
        redis_server: RedisServer, client: redis.Redis,  # noqa: F811
        streams: tuple[str, str]) -> None:
    # Given a standalone server (no replicas) and a destination asking for one
    settings = RedisStreamDestinationSettings(
        stream=streams[1], url=redis_server.url, min_replicas_acked=1,
        replica_timeout_milliseconds=50)
    destination = RedisStreamDestination(settings, context())
    # Then send fails rather than claim durability it does not have
    with pytest.raises(DestinationError, match="only 0 of 1 replicas"):
        destination.send({"requestContext": {}}, [])
    destination.close()
