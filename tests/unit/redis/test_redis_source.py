"""RedisStreamsSource against fakeredis: reads, acks, pause, lag, errors (DESIGN §3)."""

from __future__ import annotations

import threading
from collections.abc import Collection

import fakeredis
import orjson
import pytest
import redis

from connectors.redis.reclaim import Reclaimer
from connectors.redis.settings import RedisStreamsSettings
from connectors.redis.source import RedisStreamsSource
from esm.clock import FakeClock
from esm.errors import SourceUnavailable
from esm.interfaces import ConnectorContext
from tests.servers.common import free_port
from tests.unit.threads_left import close_after_test


class Listener:
    def __init__(self) -> None:
        self.assigned: list[str] = []

    def lanes_assigned(self, lanes: Collection[str]) -> None:
        self.assigned.extend(lanes)

    def lanes_revoked(self, lanes: Collection[str]) -> None:
        pass


@pytest.fixture
def client() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


def make_source(client: redis.Redis, **overrides: object) -> RedisStreamsSource:
    values: dict[str, object] = {"streams": ("a", "b"), "consumer_name": "c1"}
    values.update(overrides)
    settings = RedisStreamsSettings(**values)  # type: ignore[arg-type]
    source = close_after_test(RedisStreamsSource(
        settings, ConnectorContext("m", threading.Event(), FakeClock()), client=client))
    source.open(Listener())
    return source


def add(client: redis.Redis, stream: str, *bodies: str) -> list[str]:
    return [client.xadd(stream, {"body": body}).decode() for body in bodies]


def pending(client: redis.Redis, stream: str) -> int:
    return int(client.xpending(stream, "esm")["pending"])


def test_open_creates_the_group_and_assigns_every_stream(client: fakeredis.FakeRedis) -> None:
    listener = Listener()
    source = close_after_test(RedisStreamsSource(
        RedisStreamsSettings(streams=("a", "b")),
        ConnectorContext("m", threading.Event(), FakeClock()), client=client))
    source.open(listener)
    assert listener.assigned == ["a", "b"]
    assert [g["name"] for g in client.xinfo_groups("a")] == [b"esm"]


def test_trim_horizon_reads_entries_written_before_the_group(client: fakeredis.FakeRedis) -> None:
    ids = add(client, "a", "1", "2")
    source = make_source(client)
    assert [r.item_id for r in source.poll(10, 0)] == ids


def test_latest_skips_entries_written_before_the_group(client: fakeredis.FakeRedis) -> None:
    add(client, "a", "old")
    source = make_source(client, starting_position="LATEST")
    new = add(client, "a", "new")
    assert [r.item_id for r in source.poll(10, 0)] == new


def test_existing_group_keeps_its_position(client: fakeredis.FakeRedis) -> None:
    # Given a group that already consumed and acked one entry
    add(client, "a", "1")
    first = make_source(client)
    first.ack(first.poll(10, 0))
    second_id = add(client, "a", "2")
    # When a new source (LATEST) joins the existing group
    again = make_source(client, starting_position="LATEST", consumer_name="c2")
    # Then it resumes after the last delivered entry, ignoring starting_position
    assert [r.item_id for r in again.poll(10, 0)] == second_id


def test_poll_returns_entries_in_order_with_first_delivery_count(
        client: fakeredis.FakeRedis) -> None:
    ids = add(client, "a", "1", "2", "3")
    records = make_source(client).poll(10, 0)
    assert [r.item_id for r in records] == ids
    assert {r.delivery_count for r in records} == {1}
    assert {r.lane for r in records} == {"a"}


def test_poll_never_returns_more_than_max_records_and_keeps_the_rest(
        client: fakeredis.FakeRedis) -> None:
    # Given 3 entries on each of two streams (XREADGROUP COUNT applies per stream)
    ids_a, ids_b = add(client, "a", "1", "2", "3"), add(client, "b", "4", "5", "6")
    source = make_source(client)
    # When polling 4 at a time
    first, second = source.poll(4, 0), source.poll(4, 0)
    # Then no poll exceeds 4, and every entry arrives once, in order per stream
    assert len(first) <= 4 and len(second) <= 4
    got = [(r.lane, r.item_id) for r in [*first, *second, *source.poll(4, 0)]]
    assert sorted(got) == sorted([("a", i) for i in ids_a] + [("b", i) for i in ids_b])
    assert [i for lane, i in got if lane == "a"] == ids_a


def test_ack_removes_the_entry_from_the_pending_list(client: fakeredis.FakeRedis) -> None:
    add(client, "a", "1", "2")
    source = make_source(client)
    records = source.poll(10, 0)
    source.ack(records[:1])
    assert pending(client, "a") == 1


def test_released_delivery_is_never_acked_by_that_delivery(client: fakeredis.FakeRedis) -> None:
    # Given a record the core released after a failure
    add(client, "a", "1")
    source = make_source(client)
    records = source.poll(10, 0)
    source.release(records, 0)
    # When a stale ack for that same delivery arrives
    source.ack(records)
    # Then the entry stays pending, for redelivery after the visibility timeout
    assert pending(client, "a") == 1


def test_ack_twice_sends_one_xack(client: fakeredis.FakeRedis,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    add(client, "a", "1")
    source = make_source(client)
    records = source.poll(10, 0)
    calls: list[tuple[object, ...]] = []
    original = fakeredis.FakeRedis.xack
    monkeypatch.setattr(fakeredis.FakeRedis, "xack",
                        lambda self, *a: calls.append(a) or original(self, *a))
    source.ack(records)
    source.ack(records)
    assert len(calls) <= 1 and pending(client, "a") == 0


def test_record_read_by_an_earlier_instance_is_still_acked(client: fakeredis.FakeRedis) -> None:
    # Given a record read before a reconnect rebuilt the source
    add(client, "a", "1")
    old = make_source(client)
    records = old.poll(10, 0)
    new = make_source(client)
    # When the core acks it on the new instance
    new.ack(records)
    # Then Redis forgets it (XACK is idempotent on the server)
    assert pending(client, "a") == 0


def test_paused_stream_yields_nothing_until_resumed(client: fakeredis.FakeRedis) -> None:
    add(client, "a", "1")
    ids_b = add(client, "b", "2")
    source = make_source(client)
    source.pause(["a"])
    assert [r.item_id for r in source.poll(10, 0)] == ids_b
    assert source.poll(10, 0) == []
    source.resume(["a"])
    assert [r.lane for r in source.poll(10, 0)] == ["a"]


def test_all_streams_paused_returns_at_once_without_reading(
        client: fakeredis.FakeRedis) -> None:
    """The reader, not the source, waits: only a settlement resumes a stream."""
    add(client, "a", "1")
    source = make_source(client, streams=("a",))
    source.pause(["a"])
    assert source.poll(10, 0.25) == []
    assert source.context.clock.waits == []  # type: ignore[attr-defined]
    assert pending(client, "a") == 0


def test_lag_counts_undelivered_plus_pending(client: fakeredis.FakeRedis) -> None:
    add(client, "a", "1", "2", "3")
    source = make_source(client)
    # Given one of three entries delivered: 2 undelivered + 1 pending
    delivered = source.poll(1, 0)
    assert source.lag() == {"a": 3.0, "b": 0.0}
    # When it is acked, only the 2 undelivered remain
    source.ack(delivered)
    assert source.lag()["a"] == 2.0


def test_group_deleted_while_running_is_recreated(client: fakeredis.FakeRedis) -> None:
    source = make_source(client, streams=("a",))
    client.xgroup_destroy("a", "esm")
    assert source.poll(10, 0) == []
    ids = add(client, "a", "after")
    assert [r.item_id for r in source.poll(10, 0)] == ids


def test_close_forgets_an_idle_consumer_and_keeps_a_busy_one(
        client: fakeredis.FakeRedis) -> None:
    add(client, "a", "1")
    busy = make_source(client, streams=("a",), consumer_name="busy")
    busy.poll(10, 0)
    idle = make_source(client, streams=("a",), consumer_name="idle")
    idle.poll(10, 0)
    idle.close()
    busy.close()
    assert [c["name"] for c in client.xinfo_consumers("a", "esm")] == [b"busy"]


def test_unreachable_redis_raises_source_unavailable() -> None:
    # Given a source built by itself (its own client) for a port nobody listens on
    settings = RedisStreamsSettings(streams=("a",), url=f"redis://127.0.0.1:{free_port()}/0")
    source = RedisStreamsSource(settings, ConnectorContext("m", threading.Event(), FakeClock()))
    with pytest.raises(SourceUnavailable, match="redis_streams open failed"):
        source.open(Listener())


def test_wrong_key_type_is_reported_as_unavailable_with_the_reason(
        client: fakeredis.FakeRedis) -> None:
    client.set("a", "not a stream")
    with pytest.raises(SourceUnavailable, match="WRONGTYPE"):
        make_source(client, streams=("a",))


def test_pure_methods_shape_event_and_identifiers(client: fakeredis.FakeRedis) -> None:
    add(client, "a", "x")
    source = make_source(client)
    records = source.poll(10, 0)
    assert source.build_event(records) == {"Records": [records[0].payload]}
    assert source.encode_event(records) == orjson.dumps(source.build_event(records))
    assert source.event_overhead_bytes() == len(b'{"Records":[]}')
    assert source.item_identifier(records[0].item_id) == records[0].item_id
    assert [source.item_identifier(v) for v in ("", None, 5, {"id": 1})] == [None] * 4
    assert source.batch_info(records)["batchSize"] == 1
    assert source.traits.family == "queue"
    assert source.traits.batch_info_key == "RedisStreamBatchInfo"


def test_reclaimer_claims_idle_entries_with_their_attempt_numbers(
        client: fakeredis.FakeRedis) -> None:
    # Given entries delivered to a consumer that went away
    ids = add(client, "a", "1", "2", "3")
    client.xgroup_create("a", "esm", id="0")
    client.xreadgroup("esm", "dead", {"a": ">"}, count=10)
    # When another consumer reclaims them (visibility 0: idle at once), one still in flight
    claimed = Reclaimer(client, "esm", "alive", 0).claim("a", 10, in_flight={ids[1]})
    # Then the others come back delivered twice by Redis but still attempt 1 (the dead
    # consumer never failed them at the target), and all are now the new consumer's
    assert [(i, n, a) for i, _, n, a in claimed] == [(ids[0], 2, 1), (ids[2], 2, 1)]
    owners = {r["consumer"] for r in client.xpending_range("a", "esm", "-", "+", 10)}
    assert owners == {b"alive"}


def test_short_poll_timeouts_read_without_block(client: fakeredis.FakeRedis) -> None:
    """Redis answers a BLOCK shorter than its 100 ms cron tick only on that tick: while
    batches are in flight (1 ms polls) a blocked read would stall each settlement."""
    source = make_source(client, streams=("a",))
    sent: list[tuple[object, ...]] = []
    original = source._pipe.send

    def spy(on_reply: object, *args: object) -> None:
        sent.append(args)
        original(on_reply, *args)  # type: ignore[arg-type]

    source._pipe.send = spy  # type: ignore[method-assign]
    source.poll(10, 0.001)
    source.poll(10, 0.099)
    source.poll(10, 0.5)
    blocks = [args[args.index("BLOCK") + 1] if "BLOCK" in args else None for args in sent]
    assert blocks == [None, None, 500]  # the timeout (block_milliseconds is 1000)


def test_a_fast_stream_is_read_ahead_and_acks_are_confirmed_by_the_next_poll(
        client: fakeredis.FakeRedis) -> None:
    ids = add(client, "a", *[str(n) for n in range(25)])
    source = make_source(client, streams=("a",))
    # When a poll fills its count, the next read is already sent (its reply not read)
    first = source.poll(10, 0.01)
    assert [r.item_id for r in first] == ids[:10]
    assert len(source._pipe) == 1
    # Then the next poll hands out what that read returned, in order
    source.ack(first)
    assert len(source._pipe) == 2  # the XACK, sent at once
    second = source.poll(10, 0.01)
    assert [r.item_id for r in second] == ids[10:20]
    assert pending(client, "a") == 15  # the first ten acked; ten out, five read ahead
    # And a short read stops reading ahead
    source.ack(second)
    third = source.poll(10, 0.01)
    assert [r.item_id for r in third] == ids[20:]
    assert len(source._pipe) == 0
    source.ack(third)
    source.close()
    assert pending(client, "a") == 0


def test_a_short_poll_does_not_wait_for_a_read_sent_ahead(client: fakeredis.FakeRedis) -> None:
    """While batches are in flight the reader polls with 1 ms: it must get back to its
    settlements instead of waiting for Redis to answer the read sent ahead."""
    ids = add(client, "a", *[str(n) for n in range(20)])
    source = make_source(client, streams=("a",))
    assert len(source.poll(10, 0.01)) == 10 and len(source._pipe) == 1
    arrived = []
    source._pipe._arrived = lambda: bool(arrived)  # type: ignore[method-assign]
    # When the reply has not arrived, a short poll returns nothing and sends nothing more
    assert source.poll(10, 0.001) == []
    assert len(source._pipe) == 1
    # Once it has (or with a longer timeout), the records come
    arrived.append(True)
    assert [r.item_id for r in source.poll(10, 0.001)] == ids[10:]
    source.close()
