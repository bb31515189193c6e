"""The `aws:rmq` event, field by field and type by type (ESM-SPEC §2.6), as typed Lambda
clients and Powertools' RabbitMQEvent read it."""

from __future__ import annotations

import base64
import threading
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pika
import pytest
from aws_lambda_powertools.utilities.data_classes.rabbit_mq_event import RabbitMQEvent

from connectors.rabbitmq import event as ev
from connectors.rabbitmq.publish import header_value as header_back
from connectors.rabbitmq.publish import properties, split_event
from connectors.rabbitmq.settings import RabbitMQSettings
from connectors.rabbitmq.source import RabbitMQSource
from esm.clock import FakeClock
from esm.config.loading import load_config
from esm.failures.responses import interpret
from esm.interfaces import ConnectorContext
from esm.records import Batch, FunctionError, PartialFailure, Record, Returned
from esm.runtime.assembly import build_matcher

KEYS = ("contentType", "contentEncoding", "headers", "deliveryMode", "priority",
        "correlationId", "replyTo", "expiration", "messageId", "timestamp", "type",
        "userId", "appId", "clusterId", "bodySize")


def record(body: bytes, props: Any, tag: int = 1, queue: str = "pizzaQueue") -> Record:
    message = ev.message(props, False, body)
    encoded = orjson.dumps(message)
    return Record(lane=queue, position=str(tag), item_id=props.message_id or "",
                  payload=message, size_bytes=len(encoded), timestamp=0.0,
                  filter_view=ev.FilterView(message, body),
                  handle=ev.Delivery(tag, ev.queue_key(queue, "/"), 1), encoded=encoded)


def source(**settings: Any) -> RabbitMQSource:
    values: dict[str, Any] = {"queues": ("pizzaQueue",), "url": "amqp://rabbit/"}
    values.update(settings)
    context = ConnectorContext("m", threading.Event(), FakeClock())
    return RabbitMQSource(RabbitMQSettings(**values), context, environ={})


def test_unset_properties_are_present_as_null_with_int_defaults() -> None:
    basic = ev.basic_properties(pika.BasicProperties(), 3)
    assert tuple(basic) == KEYS  # all 15, in AWS's order
    assert basic["deliveryMode"] == 1 and basic["priority"] == 0  # never null (Rust, .NET)
    assert basic["bodySize"] == 3
    assert [k for k, v in basic.items() if v is None] == [
        k for k in KEYS if k not in ("deliveryMode", "priority", "bodySize")]


def test_every_property_keeps_its_aws_type() -> None:
    props = pika.BasicProperties(
        content_type="text/plain", content_encoding="utf-8", headers={"header1": "value1"},
        delivery_mode=2, priority=34, correlation_id="c", reply_to="r", expiration="60000",
        message_id="m", timestamp=2021, type="t", user_id="AIDACKCEVSQ6C2EXAMPLE",
        app_id="a", cluster_id="k")
    basic = ev.basic_properties(props, 80)
    assert basic["headers"] == {"header1": {"bytes": [118, 97, 108, 117, 101, 49]}}
    assert basic["expiration"] == "60000" and isinstance(basic["expiration"], str)
    assert basic["timestamp"] == "Jan 1, 1970, 12:33:41 AM"  # ESM-SPEC §2.6's example
    assert (basic["deliveryMode"], basic["priority"], basic["bodySize"]) == (2, 34, 80)
    assert all(isinstance(basic[k], str) for k in (
        "contentType", "contentEncoding", "correlationId", "replyTo", "messageId", "type",
        "userId", "appId", "clusterId"))


@pytest.mark.parametrize(("epoch", "text"), [
    (0, "Jan 1, 1970, 12:00:00 AM"),
    (43200, "Jan 1, 1970, 12:00:00 PM"),
    (1700000000, "Nov 14, 2023, 10:13:20 PM"),
    (951782400, "Feb 29, 2000, 12:00:00 AM"),
])
def test_timestamps_are_gson_dates_in_utc_and_read_back(epoch: int, text: str) -> None:
    assert ev.gson_date(epoch) == text
    assert ev.parse_gson_date(text) == epoch


def test_headers_use_the_java_clients_encoding() -> None:
    headers = {"s": "ë", "raw": b"\xff\x01", "n": 10, "f": 1.5, "yes": True, "void": None,
               "dec": Decimal("2.50"), "whole": Decimal("3"),
               "when": datetime(1970, 1, 1, 0, 33, 41, tzinfo=UTC),
               "table": {"inner": "a"}, "array": ["a", 1]}
    encoded = ev.basic_properties(pika.BasicProperties(headers=headers), 0)["headers"]
    assert encoded == {
        "s": {"bytes": [-61, -85]}, "raw": {"bytes": [-1, 1]}, "n": 10, "f": 1.5,
        "yes": True, "void": None, "dec": 2.5, "whole": 3,
        "when": "Jan 1, 1970, 12:33:41 AM", "table": {"inner": {"bytes": [97]}},
        "array": [{"bytes": [97]}, 1]}


def test_headers_read_back_for_redrive() -> None:
    assert header_back({"bytes": [-61, -85]}) == "ë"
    assert header_back({"bytes": [-1, 1]}) == b"\xff\x01"
    assert header_back({"t": {"bytes": [97]}, "n": [1, {"bytes": [98]}]}) == {
        "t": "a", "n": [1, "b"]}


def test_event_groups_messages_by_queue_and_vhost_and_encodes_the_same() -> None:
    src = source(event_source_arn="arn:aws:mq:us-west-2:111122223333:broker:pizza:b-1")
    records = [record(b'{"a": 1}', pika.BasicProperties(message_id=f"m{i}"), tag=i)
               for i in range(3)]
    event = src.build_event(records)
    assert event["eventSource"] == "aws:rmq"
    assert event["eventSourceArn"] == "arn:aws:mq:us-west-2:111122223333:broker:pizza:b-1"
    messages = event["rmqMessagesByQueue"]["pizzaQueue::/"]
    assert [m["basicProperties"]["messageId"] for m in messages] == ["m0", "m1", "m2"]
    assert messages[0]["redelivered"] is False
    assert base64.b64decode(messages[0]["data"]) == b'{"a": 1}'
    assert src.encode_event(records) == orjson.dumps(event)
    assert src.event_overhead_bytes() == len(orjson.dumps({**event, "rmqMessagesByQueue": {
        "pizzaQueue::/": []}}))


def test_default_arn_is_built_from_host_and_vhost() -> None:
    event = source(url="amqp://esm@rabbit:5672/prod").build_event([])
    assert event["eventSourceArn"] == "arn:aws:mq:local:000000000000:broker:rabbit:prod"


def test_powertools_reads_the_event() -> None:
    props = pika.BasicProperties(content_type="application/json", headers={"h": "v"},
                                 message_id="m1", timestamp=2021, expiration="60000")
    event = RabbitMQEvent(source().build_event([record(b'{"amount": 12}', props)]))
    assert event.event_source == "aws:rmq"
    [(key, [message])] = event.rmq_messages_by_queue.items()
    assert key == "pizzaQueue::/"
    assert message.json_data == {"amount": 12}
    assert message.decoded_data == '{"amount": 12}'
    assert message.redelivered is False
    basic = message.basic_properties
    assert (basic.message_id, basic.content_type, basic.expiration) == (
        "m1", "application/json", "60000")
    assert (basic.delivery_mode, basic.priority, basic.body_size) == (1, 0, 14)
    assert basic.headers == {"h": {"bytes": [118]}}
    assert basic.timestamp == "Jan 1, 1970, 12:33:41 AM"


@pytest.mark.parametrize(("body", "view"), [
    (b'{"type": "order"}', {"type": "order"}),
    (b"plain text", "plain text"),
    (b"\xff\xfe", None),  # not UTF-8: absent, so only metadata is filtered on
])
def test_filters_see_data_as_json_or_text(body: bytes, view: Any) -> None:
    document = dict(record(body, pika.BasicProperties()).filter_view or {})
    assert document.get("data") == view
    assert ("data" in document) is (view is not None)
    assert document["redelivered"] is False


def test_item_identifier_is_the_message_id() -> None:
    src = source()
    assert src.item_identifier("m1") == "m1"
    assert src.item_identifier("") is None and src.item_identifier(7) is None


def test_batch_info_counts_messages_per_queue() -> None:
    records = [record(b"x", pika.BasicProperties(message_id=f"m{i}"), tag=i) for i in (1, 2)]
    info = source().batch_info(records)
    assert info["batchSize"] == 2
    assert info["queues"] == {"pizzaQueue::/": {
        "messageCount": 2, "firstMessageId": "m1", "lastMessageId": "m2"}}


def test_redrive_takes_an_event_apart_and_rebuilds_properties() -> None:
    props = pika.BasicProperties(message_id="m1", timestamp=2021, headers={"h": "v"},
                                 delivery_mode=2, user_id="other")
    event = source().build_event([record(b"body", props)])
    [message] = split_event(event)
    assert message["queueKey"] == "pizzaQueue::/"
    rebuilt = properties(message["basicProperties"], "esm")
    assert (rebuilt.message_id, rebuilt.timestamp, rebuilt.headers, rebuilt.delivery_mode) == (
        "m1", 2021, {"h": "v"}, 2)
    assert rebuilt.user_id is None  # the broker refuses a user id other than the publisher's


def test_report_batch_item_failures_names_messages_by_message_id() -> None:
    src = source()
    records = [record(b"x", pika.BasicProperties(message_id=m), tag=i)
               for i, m in enumerate(["a", "b", "b", None])]
    batch = Batch("pizzaQueue", tuple(records))

    def outcome(response: Any) -> Any:
        return interpret(Returned(response), batch, report_batch_item_failures=True,
                         item_identifier=src.item_identifier)

    partial = outcome({"batchItemFailures": [{"itemIdentifier": "b"}]})
    assert isinstance(partial, PartialFailure)
    assert partial.failed == (records[1], records[2])  # both messages with that id
    for unknown in ("c", "", None, 5):  # not in the batch, empty, null, malformed
        assert isinstance(outcome({"batchItemFailures": [{"itemIdentifier": unknown}]}),
                          FunctionError)


def test_filters_apply_to_data_with_kafkas_format_mismatch_rule(tmp_path: Any) -> None:
    # Given a mapping whose filter names data.type (ESM-SPEC §3.4: Kafka and MQ)
    path = tmp_path / "esm.yaml"
    path.write_text("mappings:\n  - name: m\n    source: {type: rabbitmq, queues: [q]}\n"
                    "    target: {type: python, handler: 'tests.integration.handlers:record'}\n"
                    "    filter_criteria: {filters: [{pattern: '{\"data\": {\"type\": "
                    "[\"order\"]}}'}]}\n")
    matcher = build_matcher(load_config([str(path)], {}).mappings[0])

    def matches(body: bytes) -> bool:
        return matcher.matches(dict(record(body, pika.BasicProperties()).filter_view or {}))

    assert matches(b'{"type": "order"}') and not matches(b'{"type": "ping"}')
    # a body that is not JSON cannot be filtered on data: only the metadata counts
    assert matches(b"plain text") and matches(b"\xff\xfe")
