"""The `aws:mq` event built from AMQP 1.0 messages, field by field (ESM-SPEC §2.6), and
checked against AWS Lambda Powertools' ActiveMQ event data class."""

from __future__ import annotations

import base64

import orjson
import pytest
from aws_lambda_powertools.utilities.data_classes.active_mq_event import ActiveMQEvent
from proton import Message

from connectors.activemq import event
from connectors.activemq.source import ActiveMQSource
from esm.filtering.lenient import compile_lenient_filters
from esm.records import Record

ARN = "arn:aws:mq:us-west-2:111122223333:broker:demo:b-1234"
RECEIVED_MS = 1_700_000_000_500


def full_message() -> Message:
    msg = Message(body='{"amount": 12}', durable=True, id="ID:broker-1:1:1:1:7",
                  correlation_id="corr-9", reply_to="queue://replies", subject="Order",
                  priority=7, creation_time=1_700_000_000.25, expiry_time=1_700_000_060.0)
    msg.properties = {"kind": "order", "flag": False, "count": 3, "ratio": 1.5, "none": None}
    msg.delivery_count = 2
    return msg


def record_of(msg: Message, queue: str = "orders") -> Record:
    return event.to_record(msg, queue, "slot-1", RECEIVED_MS, handle="h")


def test_every_field_has_the_aws_spelling_and_type() -> None:
    payload = record_of(full_message()).payload
    assert payload == {
        "messageID": "ID:broker-1:1:1:1:7",
        "messageType": "jms/text-message",
        "timestamp": 1_700_000_000_250,
        "deliveryMode": 2,
        "correlationID": "corr-9",
        "replyTo": "queue://replies",
        "destination": {"physicalName": "orders"},
        "redelivered": True,
        "type": "Order",
        "expiration": 1_700_000_060_000,
        "priority": 7,
        "data": base64.b64encode(b'{"amount": 12}').decode(),
        "brokerInTime": 1_700_000_000_250,
        "brokerOutTime": RECEIVED_MS,
        "properties": {"kind": "order", "flag": "false", "count": "3", "ratio": "1.5",
                       "none": "null"},
    }
    assert list(payload) == ["messageID", "messageType", "timestamp", "deliveryMode",
                             "correlationID", "replyTo", "destination", "redelivered", "type",
                             "expiration", "priority", "data", "brokerInTime",
                             "brokerOutTime", "properties"]


def test_unset_headers_take_the_values_aws_events_carry() -> None:
    payload = record_of(Message(body=b"\x00\xff")).payload
    assert payload["messageType"] == "jms/bytes-message"
    assert payload["data"] == "AP8="
    assert payload["messageID"].startswith("ID:esm-")
    assert (payload["correlationID"], payload["replyTo"], payload["type"]) == ("", "null", "")
    assert (payload["deliveryMode"], payload["priority"], payload["expiration"]) == (1, 4, 0)
    assert payload["properties"] == {} and payload["redelivered"] is False
    assert payload["timestamp"] == RECEIVED_MS  # no creation time: the receive time


def test_messages_without_an_id_get_distinct_ids() -> None:
    ids = {record_of(Message(body="x")).payload["messageID"] for _ in range(1000)}
    assert len(ids) == 1000 and all(i.startswith("ID:esm-") for i in ids)


def test_broker_in_time_never_after_broker_out_time() -> None:
    future = Message(body="x", creation_time=(RECEIVED_MS + 5000) / 1000)
    payload = record_of(future).payload
    assert payload["brokerInTime"] <= payload["brokerOutTime"] == RECEIVED_MS


def test_record_carries_delivery_count_identity_and_encoded_size() -> None:
    record = record_of(full_message())
    assert record.delivery_count == 3  # AMQP delivery-count counts earlier failed deliveries
    assert record.item_id == record.position == "ID:broker-1:1:1:1:7"
    assert record.encoded == orjson.dumps(record.payload)
    assert record.size_bytes == len(record.encoded)
    assert record.timestamp == pytest.approx(1_700_000_000.25)


def test_encoded_event_is_the_built_event_byte_for_byte() -> None:
    records = [record_of(full_message()), record_of(Message(body="b"))]
    built = event.build_event(records, ARN)
    assert built["eventSource"] == "aws:mq" and built["eventSourceArn"] == ARN
    assert event.encode_event(records, ARN) == orjson.dumps(built)
    head, tail = event.envelope(ARN)
    assert len(head) + len(tail) == len(orjson.dumps(event.build_event([], ARN)))


def test_powertools_active_mq_event_reads_every_field() -> None:
    records = [record_of(full_message())]
    parsed = ActiveMQEvent(orjson.loads(event.encode_event(records, ARN)))
    assert (parsed.event_source, parsed.event_source_arn) == ("aws:mq", ARN)
    msg = parsed.message
    assert msg.message_id == "ID:broker-1:1:1:1:7"
    assert msg.message_type == "jms/text-message"
    assert msg.json_data == {"amount": 12} and msg.decoded_data == '{"amount": 12}'
    assert msg.redelivered is True and msg.timestamp == 1_700_000_000_250
    assert msg.broker_in_time <= msg.broker_out_time
    assert msg.properties["flag"] == "false"
    assert msg.destination_physicalname == "orders"
    assert (msg.delivery_mode, msg.correlation_id, msg.reply_to) == (2, "corr-9",
                                                                     "queue://replies")
    assert (msg.get_type, msg.expiration, msg.priority) == ("Order", 1_700_000_060_000, 7)


@pytest.mark.parametrize(("body", "pattern", "matches"), [
    ('{"amount": 12}', {"data": {"amount": [12]}}, True),
    ('{"amount": 12}', {"data": {"amount": [13]}}, False),
    ("plain words", {"data": ["plain words"]}, True),
    ("plain words", {"properties": {"kind": ["order"]}}, True),
    ("plain words", {"redelivered": [False]}, True),
])
def test_filters_see_data_decoded(body: str, pattern: dict[str, object], matches: bool) -> None:
    msg = Message(body=body)
    msg.properties = {"kind": "order"}
    view = record_of(msg).filter_view
    assert view is not None
    matcher = compile_lenient_filters([pattern], ActiveMQSource.traits.lenient_filter_key or "")
    assert matcher.matches(dict(view)) is matches  # the reader hands matchers dicts


def test_a_json_clause_against_plain_data_filters_on_metadata_only() -> None:
    msg = Message(body="plain words")
    view = dict(record_of(msg).filter_view or {})
    matcher = compile_lenient_filters([{"data": {"amount": [12]}, "redelivered": [True]}], "data")
    assert matcher.matches(view) is False  # the data clause is ignored, redelivered decides
    lenient = compile_lenient_filters([{"data": {"amount": [12]}}], "data")
    assert lenient.matches(view) is True


def test_data_that_is_not_utf8_is_absent_from_the_filter_view() -> None:
    view = record_of(Message(body=b"\xff\xfe")).filter_view
    assert view is not None
    assert "data" not in view and "messageID" in view
    with pytest.raises(KeyError):
        view["data"]


def test_batch_info_names_queue_arn_and_message_range() -> None:
    records = [record_of(full_message()), record_of(Message(body="b", id="ID:2"))]
    info = event.batch_info(records, ARN, "orders")
    assert info["batchSize"] == 2 and info["eventSourceArn"] == ARN
    assert (info["firstMessageId"], info["lastMessageId"]) == ("ID:broker-1:1:1:1:7", "ID:2")
    assert info["maxDeliveryCount"] == 3
    assert info["payloadSize"] == sum(r.size_bytes for r in records)
