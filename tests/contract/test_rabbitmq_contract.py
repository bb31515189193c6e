# ruff: noqa: F811  (pytest fixtures imported explicitly, per the harness convention)
"""RabbitMQSource against a real broker (Debian's rabbitmq-server, tests/servers/)."""

from __future__ import annotations

import base64
import threading
import time
import uuid
from typing import Any

import pika
import pytest

from connectors.rabbitmq.settings import RabbitMQSettings
from connectors.rabbitmq.source import RabbitMQSource
from esm.clock import SystemClock
from esm.errors import SourceUnavailable
from esm.failures.policy import FailurePolicy
from esm.interfaces import ConnectorContext
from esm.records import Batch, DeadLetter, FunctionError, Record, Release
from tests.servers.rabbitmq_server import PASSWORD, RabbitMQServer, rabbitmq_server  # noqa: F401

ENV = {"RMQ_PASSWORD": PASSWORD}


class Listener:
    def __init__(self) -> None:
        self.lanes: list[str] = []

    def lanes_assigned(self, lanes: Any) -> None:
        self.lanes += list(lanes)

    def lanes_revoked(self, lanes: Any) -> None:
        pass


def new_queue(server: RabbitMQServer, quorum: bool = False) -> str:
    name = f"q-{uuid.uuid4().hex[:8]}"
    arguments = {"x-queue-type": "quorum"} if quorum else None
    with server.connection() as connection:
        connection.channel().queue_declare(name, durable=True, arguments=arguments)
    return name


def publish(server: RabbitMQServer, queue: str, bodies: list[bytes], **props: Any) -> None:
    with server.connection() as connection:
        channel = connection.channel()
        channel.confirm_delivery()  # on the broker (and on disk, persistent) when this returns
        for i, body in enumerate(bodies):
            properties = pika.BasicProperties(message_id=f"{queue}-{i}", delivery_mode=2,
                                              **props)
            channel.basic_publish("", queue, body, properties)


def ready(server: RabbitMQServer, queue: str) -> int:
    with server.connection() as connection:
        return int(connection.channel().queue_declare(queue, passive=True).method.message_count)


def open_source(server: RabbitMQServer, *queues: str, stop: threading.Event | None = None,
                listener: Listener | None = None, concurrency: int | None = None,
                **settings: Any) -> RabbitMQSource:
    config = RabbitMQSettings(queues=queues, url=server.url, password_env="RMQ_PASSWORD",
                              **settings)
    context = ConnectorContext("contract", stop or threading.Event(), SystemClock(),
                               batch_size=10, maximum_concurrency=concurrency)
    source = RabbitMQSource(config, context, environ=ENV)
    source.open(listener or Listener())
    return source


def poll_until(source: RabbitMQSource, want: int, seconds: float = 15.0) -> list[Record]:
    got: list[Record] = []
    deadline = time.monotonic() + seconds
    while len(got) < want and time.monotonic() < deadline:
        got += source.poll(1000, 0.5)
    return got


def test_acked_messages_leave_the_queue_and_the_event_has_aws_shape(
        rabbitmq_server: RabbitMQServer) -> None:
    queue = new_queue(rabbitmq_server)
    publish(rabbitmq_server, queue, [b'{"n": %d}' % i for i in range(50)],
            headers={"h": "v"}, timestamp=2021, content_type="application/json")
    source = open_source(rabbitmq_server, queue, prefetch_count=100)
    records = poll_until(source, 50)
    assert [r.item_id for r in records] == [f"{queue}-{i}" for i in range(50)]  # in order
    event = source.build_event(records[:2])
    assert event["eventSourceArn"] == "arn:aws:mq:local:000000000000:broker:127.0.0.1:/"
    [message, _] = event["rmqMessagesByQueue"][f"{queue}::/"]
    assert base64.b64decode(message["data"]) == b'{"n": 0}'
    assert message["redelivered"] is False
    basic = message["basicProperties"]
    assert basic["headers"] == {"h": {"bytes": [118]}}
    assert (basic["deliveryMode"], basic["timestamp"], basic["bodySize"]) == (
        2, "Jan 1, 1970, 12:33:41 AM", 8)
    assert records[0].filter_view is not None and dict(records[0].filter_view)["data"] == {
        "n": 0}
    # When every record is acked / Then nothing is left, not even after reconnecting
    source.ack(records[10:])  # singles while 0-9 are owed
    source.ack(records[:10])  # then one multiple ack
    source.close()
    assert ready(rabbitmq_server, queue) == 0


def test_concurrency_splits_each_queue_into_slots_of_batch_runs(
        rabbitmq_server: RabbitMQServer) -> None:
    first, second = new_queue(rabbitmq_server), new_queue(rabbitmq_server)
    publish(rabbitmq_server, first, [b"x"] * 30)
    publish(rabbitmq_server, second, [b"y"] * 5)
    listener = Listener()
    source = open_source(rabbitmq_server, first, second, listener=listener, concurrency=3)
    assert source.prefetch_count == 60  # 2 x batch 10 x 3 slots
    assert listener.lanes == [f"{q}#slot-{i}" for q in (first, second) for i in range(3)]
    source.pause([f"{first}#slot-1"])
    records = poll_until(source, 35)
    lanes = [r.lane for r in records if r.lane.startswith(first)]
    assert lanes == [f"{first}#slot-0"] * 10 + [f"{first}#slot-2"] * 10 + \
        [f"{first}#slot-0"] * 10  # runs of batch_size, the paused slot skipped
    assert {r.lane for r in records if r.lane.startswith(second)} == {f"{second}#slot-0"}
    source.ack(records)
    source.close()


def test_prefetch_bounds_what_esm_holds_unacked(rabbitmq_server: RabbitMQServer) -> None:
    queue = new_queue(rabbitmq_server)
    publish(rabbitmq_server, queue, [b"x"] * 30)
    source = open_source(rabbitmq_server, queue, prefetch_count=7)
    first = poll_until(source, 7, seconds=3)
    assert len(first) == 7
    assert source.poll(1000, 0.5) == []  # the broker sends no more until some are acked
    source.ack(first[:3])
    assert len(poll_until(source, 3, seconds=5)) == 3
    source.close()


def test_released_messages_come_back_redelivered_after_the_backoff(
        rabbitmq_server: RabbitMQServer) -> None:
    queue = new_queue(rabbitmq_server)
    publish(rabbitmq_server, queue, [b"a", b"b"])
    source = open_source(rabbitmq_server, queue)
    records = poll_until(source, 2)
    source.ack(records[1:])
    source.release(records[:1], 1.0)
    started = time.monotonic()
    assert source.poll(1000, 0.2) == []  # held back for the delay, still unacked
    [again] = poll_until(source, 1, seconds=5)
    assert time.monotonic() - started >= 0.9
    assert again.payload["redelivered"] is True
    assert again.item_id == records[0].item_id
    assert again.delivery_count == 2  # a classic queue: esm's own count
    source.ack([again])
    source.close()
    assert ready(rabbitmq_server, queue) == 0


def test_quorum_queue_counts_each_reject_in_x_delivery_count(
        rabbitmq_server: RabbitMQServer) -> None:
    queue = new_queue(rabbitmq_server, quorum=True)
    publish(rabbitmq_server, queue, [b"poison"])
    source = open_source(rabbitmq_server, queue)
    counts = []
    for _ in range(3):
        [record] = poll_until(source, 1)
        counts.append((record.delivery_count,
                       (record.payload["basicProperties"]["headers"] or {}).get(
                           "x-delivery-count")))
        source.release([record], 0.0)
    assert counts == [(1, None), (2, 1), (3, 2)]
    source.close()


@pytest.mark.parametrize("quorum", [False, True], ids=["classic", "quorum"])
def test_failing_message_is_dead_lettered_after_max_deliveries(
        rabbitmq_server: RabbitMQServer, quorum: bool) -> None:
    queue = new_queue(rabbitmq_server, quorum=quorum)
    publish(rabbitmq_server, queue, [b"poison"])
    source = open_source(rabbitmq_server, queue)
    policy = FailurePolicy("queue", max_deliveries=3)
    failure = FunctionError("Boom", "always fails")
    invocations = 0
    while True:
        [record] = poll_until(source, 1)
        screened, rest = policy.screen(Batch(queue, (record,)), time.time())
        assert rest is not None and not screened  # never dead-lettered before it failed
        invocations += 1
        [step] = policy.decide(rest, failure, attempt=0, invoke_count=1, now=time.time())
        if isinstance(step, DeadLetter):
            source.ack(step.records)  # after the notice is durable (the core's order)
            break
        assert isinstance(step, Release)
        source.release(step.records, 0.0)
    assert (invocations, step.condition, record.delivery_count) == (
        3, "MaxDeliveriesExceeded", 3)
    source.close()
    assert ready(rabbitmq_server, queue) == 0


def test_filtered_and_stopping_releases_do_not_count_as_failures(
        rabbitmq_server: RabbitMQServer) -> None:
    queue = new_queue(rabbitmq_server)
    publish(rabbitmq_server, queue, [b"a"])
    stop = threading.Event()
    source = open_source(rabbitmq_server, queue, stop=stop)
    [record] = poll_until(source, 1)
    stop.set()  # a stopping mapping hands back what it never invoked
    source.release([record], 0.0)
    [again] = poll_until(source, 1)
    assert again.payload["redelivered"] is True and again.delivery_count == 1
    source.close()


def test_redrive_publishes_messages_back_to_their_queue(
        rabbitmq_server: RabbitMQServer) -> None:
    queue = new_queue(rabbitmq_server)
    publish(rabbitmq_server, queue, [b"\x00binary", b'{"a": 1}'], headers={"h": "v"})
    source = open_source(rabbitmq_server, queue)
    records = poll_until(source, 2)
    event = source.build_event(records)
    source.ack(records)
    source.produce(source.event_records(event))
    again = poll_until(source, 2)
    assert [r.payload["data"] for r in again] == [r.payload["data"] for r in records]
    assert [r.item_id for r in again] == [r.item_id for r in records]
    assert again[0].payload["basicProperties"]["headers"] == {"h": {"bytes": [118]}}
    source.ack(again)
    source.close()


def test_missing_queue_and_bad_password_are_source_unavailable(
        rabbitmq_server: RabbitMQServer) -> None:
    with pytest.raises(SourceUnavailable, match="NOT_FOUND"):
        open_source(rabbitmq_server, "no-such-queue")
    config = RabbitMQSettings(queues=("q",), url=rabbitmq_server.url, password_env="P")
    source = RabbitMQSource(config, ConnectorContext("c", threading.Event(), SystemClock()),
                            environ={"P": "wrong-password"})
    with pytest.raises(SourceUnavailable) as raised:
        source.open(Listener())
    assert "wrong-password" not in str(raised.value)


def test_a_deleted_queue_makes_the_source_unavailable_not_silent(
        rabbitmq_server: RabbitMQServer) -> None:
    queue = new_queue(rabbitmq_server)
    source = open_source(rabbitmq_server, queue)
    assert source.poll(1000, 0.1) == []
    with rabbitmq_server.connection() as connection:
        connection.channel().queue_delete(queue)
    with pytest.raises(SourceUnavailable, match=f"cancelled the consumer of {queue}"):
        for _ in range(20):
            source.poll(1000, 0.1)
    source.close()


def test_unacked_messages_come_back_after_the_broker_is_killed_and_restarted() -> None:
    server = RabbitMQServer()  # its own broker: this test kills it
    server.start()
    try:
        queue = new_queue(server)
        publish(server, queue, [b"m%d" % i for i in range(20)])
        server.dump_metadata()  # the crash below is about deliveries, not declarations
        source = open_source(server, queue)
        records = poll_until(source, 20)
        source.ack(records[:5])
        server.kill()
        with pytest.raises(SourceUnavailable):
            for _ in range(20):  # the lost connection shows at the next client call
                source.poll(1000, 0.2)
                source.ack(records[5:6])
        source.close()
        server.start()
        server.assert_has_queue(queue)
        # Given a new source, as the supervisor builds after SourceUnavailable
        fresh = open_source(server, queue)
        again = poll_until(fresh, 20, seconds=10)
        # Then every unacked message is back (acks still on the wire at the crash may be
        # lost too: at least once, never lost)
        ids = {r.item_id for r in again}
        assert ids >= {r.item_id for r in records[5:]}
        assert ids <= {r.item_id for r in records} and len(ids) == len(again)
        assert all(r.payload["redelivered"] for r in again)
        fresh.ack(again)
        fresh.close()
        assert ready(server, queue) == 0
    finally:
        server.cleanup()
