"""SQS message → AWS event record conversion, filter view, identifiers, config rules."""

from __future__ import annotations

import orjson

from connectors.sqs.records import (
    QueueInfo,
    batch_info,
    convert,
    normalise_item_identifier,
)
from connectors.sqs.source import SqsSettings, SqsSource

QUEUE = QueueInfo(arn="arn:aws:sqs:us-east-2:123456789012:my-queue", region="us-east-2",
                  fifo=False)


def _message(body: str = "Test message.", **extra: object) -> dict[str, object]:
    return {"MessageId": "m-1", "ReceiptHandle": "rh-1", "MD5OfBody": "md5", "Body": body,
            "Attributes": {"ApproximateReceiveCount": "2", "SentTimestamp": "1545082649183"},
            **extra}


def test_record_has_exact_aws_shape_with_null_md5_when_no_message_attributes() -> None:
    # Given a message without message attributes / When converted
    received = convert(_message(), QUEUE)
    # Then the payload is the AWS record, keys in AWS order, md5OfMessageAttributes null
    assert list(received.payload) == [
        "messageId", "receiptHandle", "body", "attributes", "messageAttributes",
        "md5OfMessageAttributes", "md5OfBody", "eventSource", "eventSourceARN", "awsRegion"]
    assert received.payload["md5OfMessageAttributes"] is None
    assert received.payload["eventSource"] == "aws:sqs"
    assert received.payload["eventSourceARN"] == QUEUE.arn
    assert received.payload["awsRegion"] == "us-east-2"
    assert received.size_bytes == len(orjson.dumps(received.payload))
    assert received.timestamp == 1545082649.183
    assert received.delivery_count == 2


def test_message_attributes_are_lower_camel_with_base64_binary_values() -> None:
    # Given string and binary message attributes
    message = _message(MD5OfMessageAttributes="abc", MessageAttributes={
        "s": {"StringValue": "v", "DataType": "String"},
        "b": {"BinaryValue": b"\x00\x01", "DataType": "Binary"}})
    # When converted
    record = convert(message, QUEUE).to_record("slot-0")
    # Then keys are lower-camel and binary values base64
    assert record.payload["messageAttributes"] == {
        "s": {"stringValue": "v", "stringListValues": [], "binaryListValues": [],
              "dataType": "String"},
        "b": {"binaryValue": "AAE=", "stringListValues": [], "binaryListValues": [],
              "dataType": "Binary"}}
    assert record.payload["md5OfMessageAttributes"] == "abc"
    assert record.handle == "rh-1" and record.item_id == "m-1" and record.lane == "slot-0"


def test_filter_view_parses_json_bodies_and_keeps_plain_strings() -> None:
    # Given a JSON body, a plain body and a JSON scalar body
    json_view = convert(_message('{"a": 1}'), QUEUE).filter_view
    plain_view = convert(_message("plain-string"), QUEUE).filter_view
    broken_view = convert(_message("{not json"), QUEUE).filter_view
    # Then JSON is parsed, the rest stays text, and the event keeps the raw body
    assert json_view["body"] == {"a": 1}
    assert plain_view["body"] == "plain-string"
    assert broken_view["body"] == "{not json"
    assert "eventSourceARN" not in json_view


def test_fifo_records_are_laned_by_group_and_positioned_by_sequence_number() -> None:
    fifo = QueueInfo(arn="arn:aws:sqs:us-east-1:1:q.fifo", region="us-east-1", fifo=True)
    message = _message(Attributes={"MessageGroupId": "g1", "SequenceNumber": "42",
                                   "MessageDeduplicationId": "d", "SentTimestamp": "1000"})
    received = convert(message, fifo)
    assert received.group == "g1"
    assert received.position == "42"
    assert received.payload["attributes"]["MessageGroupId"] == "g1"


def test_item_identifier_accepts_only_non_empty_strings() -> None:
    assert normalise_item_identifier("m-1") == "m-1"
    for bad in ("", "  ", None, 12, {"id": "m-1"}):
        assert normalise_item_identifier(bad) is None


def test_check_mapping_rejects_fifo_batch_over_10_and_window() -> None:
    settings = SqsSettings(queue_url="https://sqs.us-east-1.amazonaws.com/1/q.fifo")
    problems = SqsSource.check_mapping(settings, {
        "batch_size": 11, "maximum_batching_window_in_seconds": 1})
    assert problems == [
        "batch_size: must be at most 10 for FIFO queues",
        "maximum_batching_window_in_seconds: not supported for FIFO queues (must be 0)"]


def test_check_mapping_rejects_visibility_shorter_than_target_timeout() -> None:
    settings = SqsSettings(queue_url="https://q/1/q", visibility_timeout_seconds=10)
    problems = SqsSource.check_mapping(settings, {"target": {"timeout_seconds": 30}})
    assert len(problems) == 1 and problems[0].startswith("source.visibility_timeout_seconds")
    assert SqsSource.check_mapping(settings, {"target": {"timeout_seconds": 10}}) == []


def test_destination_requires_max_receive_count_and_vice_versa() -> None:
    plain = SqsSettings(queue_url="https://q/1/q")
    counted = SqsSettings(queue_url="https://q/1/q", max_receive_count=3)
    with_destination = {"destination_config": {"on_failure": {"type": "file"}}}
    assert SqsSource.check_mapping(plain, with_destination)[0].startswith(
        "destination_config.on_failure")
    assert SqsSource.check_mapping(counted, {})[0].startswith("source.max_receive_count")
    assert SqsSource.check_mapping(counted, with_destination) == []
    assert counted.max_deliveries == 3


def test_batch_info_of_a_message_sent_past_year_9999_does_not_raise() -> None:
    message = _message(Attributes={"SentTimestamp": "99999999999999999"})
    record = convert(message, QUEUE).to_record("slot-0")
    info = batch_info([record], QUEUE, "http://q")
    assert info["approximateSentOfFirstMessage"] == "9999-12-31T23:59:59.000Z"


def test_a_body_with_a_lone_surrogate_converts_with_a_replacement_character() -> None:
    # Given a message whose body (decoded from a JSON escape) holds a lone surrogate
    message = {"MessageId": "m-1", "ReceiptHandle": "r-1", "Body": '{"a": "x\ud800y"}',
               "MessageAttributes": {"n\udc00": {"StringValue": "v", "DataType": "String"}}}
    # When it is converted
    received = convert(message, QueueInfo("arn:aws:sqs:r:1:q", "r", False))
    # Then it becomes a record an event can carry, the surrogates replaced, nothing else
    assert received.payload["body"] == '{"a": "x\ufffdy"}'
    assert list(received.payload["messageAttributes"]) == ["n\ufffd"]
    assert received.filter_view["body"] == {"a": "x\ufffdy"}
    assert received.size_bytes == len(orjson.dumps(received.payload))
