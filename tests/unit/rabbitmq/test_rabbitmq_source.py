"""RabbitMQSource's reader-thread logic with a fake pika connection and a fake clock: what
is acked and rejected, when, and on which channel."""

from __future__ import annotations

import threading
from typing import Any

import orjson
import pika
import pytest

from connectors.rabbitmq.settings import RabbitMQSettings
from connectors.rabbitmq.source import RabbitMQSource
from esm.clock import FakeClock
from esm.errors import SourceUnavailable
from esm.interfaces import ConnectorContext
from esm.protection.idempotency import idempotency_key


class FakeChannel:
    channel_number = 1
    is_open = True

    def __init__(self) -> None:
        self.consumers: dict[str, Any] = {}
        self.sent: list[tuple[str, int, bool]] = []
        self.on_cancel: Any = None
        self.prefetch = 0

    def basic_qos(self, prefetch_count: int) -> None:
        self.prefetch = prefetch_count

    def add_on_cancel_callback(self, callback: Any) -> None:
        self.on_cancel = callback

    def basic_consume(self, queue: str, callback: Any, auto_ack: bool) -> str:
        assert auto_ack is False  # manual acks only
        self.consumers[queue] = callback
        return f"ctag-{queue}"

    def basic_ack(self, tag: int, multiple: bool = False) -> None:
        self.sent.append(("ack", tag, multiple))

    def basic_reject(self, tag: int, requeue: bool) -> None:
        assert requeue
        self.sent.append(("reject", tag, False))


class FakeConnection:
    is_open = True

    def __init__(self) -> None:
        self.chan = FakeChannel()
        self.tag = 0
        self.waited: list[float] = []
        self.arriving: list[tuple[str, bytes]] = []
        self.fail: Exception | None = None

    def channel(self) -> FakeChannel:
        return self.chan

    def process_data_events(self, time_limit: float) -> None:
        if self.fail is not None:
            raise self.fail
        self.waited.append(time_limit)
        for queue, body in self.arriving:
            self.tag += 1
            method = pika.spec.Basic.Deliver(delivery_tag=self.tag, redelivered=False)
            self.chan.consumers[queue](self.chan, method, pika.BasicProperties(
                message_id=f"m{self.tag}"), body)
        self.arriving = []

    def close(self) -> None:
        self.is_open = False


class Listener:
    def lanes_assigned(self, lanes: Any) -> None:
        self.lanes = list(lanes)

    def lanes_revoked(self, lanes: Any) -> None:
        pass


def opened(*queues: str, stop: threading.Event | None = None,
           max_deliveries: int | None = None) -> tuple[RabbitMQSource, FakeConnection,
                                                       FakeClock]:
    connection, clock = FakeConnection(), FakeClock()
    context = ConnectorContext("m", stop or threading.Event(), clock, batch_size=10)
    settings = RabbitMQSettings(queues=queues, max_deliveries=max_deliveries)
    source = RabbitMQSource(settings, context, environ={},
                            connector=lambda _params, _address: connection)
    source.open(Listener())
    return source, connection, clock


def test_a_batch_is_acked_with_one_multiple_ack_and_never_twice() -> None:
    source, connection, _ = opened("q")
    assert connection.chan.prefetch == 20  # 2 x batch 10 x concurrency 1
    connection.arriving = [("q", b"x")] * 5
    records = source.poll(100, 1.0)
    assert [r.position for r in records] == ["1", "2", "3", "4", "5"]
    source.ack(records[:3])
    source.ack(records)  # 1-3 again: skipped, never a second answer
    assert connection.chan.sent == [("ack", 3, True), ("ack", 5, True)]


def test_released_messages_are_rejected_one_by_one_after_their_delay() -> None:
    source, connection, clock = opened("q")
    connection.arriving = [("q", b"x")] * 3
    records = source.poll(100, 1.0)
    source.release(records[:2], 2.0)
    assert connection.chan.sent == []  # not yet: the back-off
    source.ack(records[2:])  # 1 and 2 still owed: 3 alone, never a multiple ack over them
    assert connection.chan.sent == [("ack", 3, False)]
    assert source.poll(100, 5.0) == [] and connection.waited[-1] == pytest.approx(2.0)
    clock.advance(2.0)
    source.poll(100, 0.0)
    assert connection.chan.sent[1:] == [("reject", 1, False), ("reject", 2, False)]


def test_a_message_failing_again_counts_one_more_delivery() -> None:
    source, connection, _ = opened("q")
    connection.arriving = [("q", b"same")]
    [first] = source.poll(100, 1.0)
    source.release([first], 0.0)

    def redeliver(queue: str, body: bytes) -> None:
        connection.tag += 1
        method = pika.spec.Basic.Deliver(delivery_tag=connection.tag, redelivered=True)
        connection.chan.consumers[queue](connection.chan, method,
                                         pika.BasicProperties(message_id="m1"), body)

    redeliver("q", b"same")
    [again] = source.poll(100, 0.0)
    assert again.delivery_count == 2 and again.payload["redelivered"] is True
    source.ack([again])  # and the count is forgotten
    redeliver("q", b"same")
    assert source.poll(100, 0.0)[0].delivery_count == 1


def _redeliver_with_count(source: RabbitMQSource, connection: FakeConnection,
                          x_delivery_count: int) -> Any:
    """A quorum queue's redelivery of m1, counted `x_delivery_count` by the broker."""
    connection.tag += 1
    method = pika.spec.Basic.Deliver(delivery_tag=connection.tag, redelivered=True)
    connection.chan.consumers["q"](connection.chan, method, pika.BasicProperties(
        message_id="m1", headers={"x-delivery-count": x_delivery_count}), b"same")
    [record] = source.poll(100, 0.0)
    return record


def test_quorum_redeliveries_after_lost_connections_do_not_count_as_failed_attempts() -> None:
    # x-delivery-count counts every return, a crashed consumer's included: three daemons
    # killed while holding m1 unacked made it 3, and max_deliveries 3 dead-lettered it
    # before any target had seen it. Only failures at the target count.
    source, connection, _ = opened("q", max_deliveries=3)
    assert _redeliver_with_count(source, connection, 3).delivery_count == 1
    source.release([_redeliver_with_count(source, connection, 4)], 0.0)
    assert _redeliver_with_count(source, connection, 5).delivery_count == 2


def test_a_quorum_message_returned_in_a_crash_loop_is_dead_lettered_at_last() -> None:
    # one that takes the daemon down every time never fails at the target: past ten times
    # max_deliveries returns the broker's count decides, so it is not redelivered forever
    source, connection, _ = opened("q", max_deliveries=3)
    assert _redeliver_with_count(source, connection, 30).delivery_count == 1
    assert _redeliver_with_count(source, connection, 31).delivery_count == 32


def test_settlements_for_an_older_channel_are_ignored() -> None:
    source, connection, _ = opened("q")
    connection.arriving = [("q", b"x")]
    [record] = source.poll(100, 1.0)
    newer, newer_connection, _ = opened("q")
    newer.ack([record])
    newer.release([record], 0.0)
    assert newer_connection.chan.sent == []


def test_paused_lanes_hand_out_nothing_and_poll_returns_at_once() -> None:
    source, connection, _ = opened("a", "b")
    connection.arriving = [("a", b"1"), ("b", b"2")]
    source.pause(["a"])
    assert [r.lane for r in source.poll(100, 1.0)] == ["b"]
    source.pause(["b"])
    assert source.poll(100, 1.0) == [] and connection.waited[-1] == 0
    source.resume(["a"])
    assert [r.lane for r in source.poll(100, 1.0)] == ["a"]


def test_client_errors_and_broker_cancels_become_source_unavailable() -> None:
    source, connection, _ = opened("q")
    connection.chan.on_cancel(pika.frame.Method(1, pika.spec.Basic.Cancel("ctag-q")))
    with pytest.raises(SourceUnavailable, match="cancelled the consumer of q"):
        source.poll(100, 0.0)
    source, connection, _ = opened("q")
    connection.fail = pika.exceptions.StreamLostError("gone")
    with pytest.raises(SourceUnavailable, match="rabbitmq poll failed .*StreamLostError"):
        source.poll(100, 0.0)


def test_messages_without_an_id_get_stable_distinct_identities_for_idempotency_keys() -> None:
    source, connection, _ = opened("q")

    def deliver(body: bytes, message_id: str | None = None) -> Any:
        connection.tag += 1
        method = pika.spec.Basic.Deliver(delivery_tag=connection.tag, redelivered=False)
        connection.chan.consumers["q"](connection.chan, method,
                                       pika.BasicProperties(message_id=message_id), body)
        [record] = source.poll(100, 0.0)
        return record

    first, second, again = deliver(b"a"), deliver(b"b"), deliver(b"a")
    named = deliver(b"a", "m-1")
    assert first.item_id != second.item_id and first.item_id == again.item_id  # stable
    assert named.item_id == "m-1"  # what batchItemFailures names
    assert source.item_identifier(first.item_id) is not None  # yet no handler sees it:
    assert first.item_id not in orjson.dumps(source.build_event([first])).decode()
    assert idempotency_key("m", "q", [first]) != idempotency_key("m", "q", [second])
    assert idempotency_key("m", "q", [first]) == idempotency_key("m", "q", [again])
