"""Contract: ActiveMQSource against a real ActiveMQ Classic broker over AMQP 1.0.

The Source is driven directly, as the reader thread would (open / poll / ack / release /
close); close + a new instance is a daemon restart. Redelivery delays are 0 here so the
seven deliveries of the DLQ test take well under a second.
"""

from __future__ import annotations

import base64
import threading
import time
import uuid
from collections.abc import Collection, Iterator

import pytest

from connectors.activemq.sending import send_messages
from connectors.activemq.settings import ActiveMQSettings
from connectors.activemq.source import ActiveMQSource
from esm.clock import SystemClock
from esm.errors import SourceUnavailable
from esm.interfaces import ConnectorContext
from esm.records import Record
from tests.servers.activemq_server import (  # noqa: F401
    ActiveMQServer,
    activemq_server,
    secured_activemq_server,
)


class Listener:
    def __init__(self) -> None:
        self.lanes: list[str] = []

    def lanes_assigned(self, lanes: Collection[str]) -> None:
        self.lanes += lanes

    def lanes_revoked(self, lanes: Collection[str]) -> None:
        pass


@pytest.fixture
def queue() -> str:
    return f"orders-{uuid.uuid4().hex[:8]}"


def message(text: str, **extra: object) -> dict[str, object]:
    return {"data": base64.b64encode(text.encode()).decode(), "messageType": "jms/text-message",
            **extra}


def send(server: ActiveMQServer, queue: str, *texts: str) -> None:
    send_messages(server.url, queue, [message(t) for t in texts], user=None, password=None,
                  timeout_seconds=10)


def open_source(server: ActiveMQServer, queue: str, **overrides: object) -> ActiveMQSource:
    values: dict[str, object] = {"queue": queue, "url": server.url,
                                 "redelivery_delay_seconds": 0.0, "connect_timeout_seconds": 5}
    values.update(overrides)
    source = ActiveMQSource(ActiveMQSettings(**values),  # type: ignore[arg-type]
                            ConnectorContext("contract", threading.Event(), SystemClock()))
    source.open(Listener())
    return source


@pytest.fixture
def source(activemq_server: ActiveMQServer, queue: str) -> Iterator[ActiveMQSource]:  # noqa: F811
    src = open_source(activemq_server, queue)
    yield src
    src.close()


def poll_n(source: ActiveMQSource, n: int, seconds: float = 10.0) -> list[Record]:
    got: list[Record] = []
    deadline = time.monotonic() + seconds
    while len(got) < n and time.monotonic() < deadline:
        got += source.poll(n - len(got), 0.5)
    return got


def texts(records: list[Record]) -> list[str]:
    return [base64.b64decode(r.payload["data"]).decode() for r in records]


def test_reads_messages_in_queue_order_with_the_aws_mq_shape(
        activemq_server: ActiveMQServer, queue: str, source: ActiveMQSource) -> None:  # noqa: F811
    send_messages(activemq_server.url, queue, [message(
        "hello", properties={"kind": "order"}, correlationID="c-1", type="Order",
        replyTo="replies")], user=None, password=None, timeout_seconds=10)
    send(activemq_server, queue, "b", "c")
    records = poll_n(source, 3)
    assert texts(records) == ["hello", "b", "c"]
    first = records[0].payload
    assert first["properties"] == {"kind": "order"}
    # ActiveMQ names destinations as Java's ActiveMQDestination.toString() does
    assert (first["correlationID"], first["type"], first["replyTo"]) == (
        "c-1", "Order", "queue://replies")
    assert first["destination"] == {"physicalName": queue}
    assert first["deliveryMode"] == 2 and first["redelivered"] is False
    assert first["messageID"].startswith("ID:")
    assert first["brokerInTime"] <= first["brokerOutTime"]
    assert records[0].delivery_count == 1
    event = source.build_event(records)
    assert event["eventSource"] == "aws:mq" and len(event["messages"]) == 3


def test_accepted_messages_are_gone_after_a_restart(
        activemq_server: ActiveMQServer, queue: str) -> None:  # noqa: F811
    send(activemq_server, queue, "a", "b")
    first = open_source(activemq_server, queue)
    records = poll_n(first, 2)
    first.ack(records[:1])
    first.close()  # "b" was never settled: the broker hands it out again
    second = open_source(activemq_server, queue)
    try:
        again = poll_n(second, 2, seconds=3)
        assert texts(again) == ["b"]
        assert again[0].payload["redelivered"] is True
        second.ack(again)
    finally:
        second.close()


def test_failed_delivery_comes_back_with_a_higher_delivery_count(
        activemq_server: ActiveMQServer, queue: str, source: ActiveMQSource) -> None:  # noqa: F811
    send(activemq_server, queue, "x")
    [record] = poll_n(source, 1)
    source.release([record], 30.0)  # the core's backoff: AWS's ActiveMQ delay is constant
    [again] = poll_n(source, 1, seconds=3)
    assert texts([again]) == ["x"]
    assert (again.delivery_count, again.payload["redelivered"]) == (2, True)
    source.ack([again])


def test_release_waits_out_the_redelivery_delay(
        activemq_server: ActiveMQServer, queue: str) -> None:  # noqa: F811
    send(activemq_server, queue, "slow")
    source = open_source(activemq_server, queue, redelivery_delay_seconds=1.0)
    try:
        [record] = poll_n(source, 1)
        released_at = time.monotonic()
        source.release([record], 0.0)
        [again] = poll_n(source, 1, seconds=5)
        assert time.monotonic() - released_at >= 0.95
        assert again.delivery_count == 2
        source.ack([again])
    finally:
        source.close()


def test_seventh_failed_delivery_is_rejected_into_the_broker_dlq(
        activemq_server: ActiveMQServer, queue: str, source: ActiveMQSource) -> None:  # noqa: F811
    send(activemq_server, queue, f"poison-{queue}")
    counts = []
    for _ in range(7):
        [record] = poll_n(source, 1)
        counts.append(record.delivery_count)
        source.release([record], 0.0)
    assert counts == [1, 2, 3, 4, 5, 6, 7]
    assert poll_n(source, 1, seconds=1.5) == []
    dlq = open_source(activemq_server, "ActiveMQ.DLQ")
    try:
        dead = [r for r in poll_n(dlq, 50, seconds=3) if texts([r]) == [f"poison-{queue}"]]
        assert len(dead) == 1
        dlq.ack(dead)
    finally:
        dlq.close()


def test_maximum_redeliveries_is_configurable(
        activemq_server: ActiveMQServer, queue: str) -> None:  # noqa: F811
    send(activemq_server, queue, "once")
    source = open_source(activemq_server, queue, maximum_redeliveries=1)
    try:
        [first] = poll_n(source, 1)
        source.release([first], 0.0)
        [second] = poll_n(source, 1)
        assert second.delivery_count == 2
        source.release([second], 0.0)
        assert poll_n(source, 1, seconds=1.5) == []
    finally:
        source.close()


def test_credit_bounds_what_waits_in_the_source(
        activemq_server: ActiveMQServer, queue: str) -> None:  # noqa: F811
    send(activemq_server, queue, *[str(i) for i in range(30)])
    source = open_source(activemq_server, queue, credit=8)
    try:
        source.pause(["slot-0", "slot-1", "slot-2", "slot-3", "slot-4"])
        for _ in range(5):
            assert source.poll(100, 0.2) == []  # paused: only settlements are pumped
        source.resume(["slot-0"])
        first = source.poll(100, 2.0)
        assert 1 <= len(first) <= 8
        rest = poll_n(source, 30 - len(first))
        assert len(first) + len(rest) == 30
        source.ack(first + rest)
    finally:
        source.close()


def test_polls_hand_out_lanes_round_robin_and_skip_paused_ones(
        activemq_server: ActiveMQServer, queue: str, source: ActiveMQSource) -> None:  # noqa: F811
    send(activemq_server, queue, "a")
    source.pause(["slot-0"])
    [record] = poll_n(source, 1)
    assert record.lane != "slot-0"
    source.ack([record])


def test_lost_broker_raises_source_unavailable_and_restart_redelivers_unsettled(
        queue: str) -> None:
    server = ActiveMQServer()
    server.start()
    try:
        send(server, queue, "keep")
        source = open_source(server, queue, idle_timeout_seconds=2)
        [record] = poll_n(source, 1)
        server.kill()
        with pytest.raises(SourceUnavailable):
            for _ in range(40):
                source.poll(10, 0.25)
        source.close()
        server.start()
        again_source = open_source(server, queue)
        try:
            again = poll_n(again_source, 1)
            # KahaDB does not keep the redelivery flag across a broker crash: the message
            # itself is what must come back
            assert texts(again) == ["keep"]
            again_source.ack(again)
        finally:
            again_source.close()
        assert record.item_id == again[0].item_id
    finally:
        server.cleanup()


def test_unreachable_broker_is_a_clear_source_unavailable(
        activemq_server: ActiveMQServer, queue: str) -> None:  # noqa: F811
    settings = ActiveMQSettings(queue=queue, url="amqp://127.0.0.1:1", connect_timeout_seconds=2)
    source = ActiveMQSource(settings, ConnectorContext("c", threading.Event(), SystemClock()))
    with pytest.raises(SourceUnavailable, match="127.0.0.1:1"):
        source.open(Listener())


def test_produce_sends_event_messages_back_to_the_queue(
        activemq_server: ActiveMQServer, queue: str, source: ActiveMQSource) -> None:  # noqa: F811
    payload = {**message("again", properties={"n": "1"}), "messageType": "jms/bytes-message",
               "deliveryMode": 1, "priority": 7}
    source.produce([payload])
    [record] = poll_n(source, 1)
    assert texts([record]) == ["again"]
    got = record.payload
    assert (got["messageType"], got["deliveryMode"], got["priority"]) == (
        "jms/bytes-message", 1, 7)
    assert got["properties"] == {"n": "1"}
    source.ack([record])


def test_username_and_password_from_the_environment_authenticate(
        secured_activemq_server: ActiveMQServer, queue: str,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESM_TEST_MQ_PASSWORD", "s3cret")
    send_messages(secured_activemq_server.url, queue, [message("in")], user="esm",
                  password="s3cret", timeout_seconds=10)
    source = open_source(secured_activemq_server, queue, username="esm",
                         password_env="ESM_TEST_MQ_PASSWORD")
    try:
        records = poll_n(source, 1)
        assert texts(records) == ["in"]
        source.ack(records)
    finally:
        source.close()


def test_wrong_password_is_a_clear_source_unavailable(
        secured_activemq_server: ActiveMQServer, queue: str,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESM_TEST_MQ_PASSWORD", "wrong")
    with pytest.raises(SourceUnavailable) as raised:
        open_source(secured_activemq_server, queue, username="esm",
                    password_env="ESM_TEST_MQ_PASSWORD")
    text = str(raised.value)
    assert "Authentication failed" in text
    assert f"cannot read queue {queue!r} at {secured_activemq_server.url}" in text
    assert "wrong" not in text  # never the password


def holds_proton(value: object, depth: int = 0) -> bool:
    """Whether `value`, or anything in it, is an object of proton's (its C library frees
    them, and must only do so on the thread that pumps the connection)."""
    module = type(value).__module__ or ""
    if module.startswith(("proton", "cproton", "_cproton")):
        return True
    if depth > 4:
        return False
    if isinstance(value, dict):
        return any(holds_proton(k, depth + 1) or holds_proton(v, depth + 1)
                   for k, v in value.items())
    if isinstance(value, list | tuple | set):
        return any(holds_proton(v, depth + 1) for v in value)
    return False


def test_records_hold_nothing_of_protons_and_may_be_freed_on_any_thread(
        activemq_server: ActiveMQServer, queue: str, source: ActiveMQSource) -> None:  # noqa: F811
    # Given 600 messages
    send(activemq_server, queue, *[f"m{n}" for n in range(600)])
    # When the reader thread polls and acks them while another thread drops every record
    # (a record's last reference may go on a lane thread)
    got: list[Record] = []
    dropped = 0
    deadline = time.monotonic() + 30
    while len(got) < 600 and time.monotonic() < deadline:
        records = list(source.poll(100, 0.5))
        assert not any(holds_proton(getattr(r, f)) for r in records for f in Record.__slots__)
        source.ack(records)
        got += [Record(r.lane, r.position, r.item_id, {}, 0, 0.0) for r in records]
        dropper = threading.Thread(target=records.clear)
        dropper.start()
        source.poll(0, 0.0)  # pumps the connection meanwhile
        dropper.join()
        dropped += 1
    # Then every message arrived once, nothing crashed, and they are all settled
    assert len(got) == 600 and len({r.item_id for r in got}) == 600
    restarted = open_source(activemq_server, queue)
    try:
        assert poll_n(restarted, 1, seconds=2.0) == []
    finally:
        restarted.close()
