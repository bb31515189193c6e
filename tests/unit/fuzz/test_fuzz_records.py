"""Property: every source's pure record and event builders take any payload a broker can
hand them (not UTF-8, deep or huge JSON, odd text, extreme timestamps) without raising;
the records, events and notice batch infos they build encode as JSON with orjson and keep
the AWS shapes; the filter sees a view any compiled pattern answers with a bool."""

from __future__ import annotations

import base64
import threading
from collections.abc import Sequence
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from connectors.dynamodb_streams.source import DynamoDBStreamsSettings, DynamoDBStreamsSource
from connectors.kafka.event import KafkaEvents, parse_item_identifier, to_record
from connectors.kinesis.source import KinesisSettings, KinesisSource
from connectors.redis.entries import EntryDecoder
from connectors.sqs.records import (
    QueueInfo,
    batch_info,
    build_event,
    convert,
    normalise_item_identifier,
)
from esm.clock import FakeClock
from esm.errors import FilterPatternError
from esm.filtering import Matcher, compile_pattern
from esm.interfaces import ConnectorContext
from esm.records import Record, records_event_body
from tests.unit.fuzz.filter_patterns import pattern_objects
from tests.unit.fuzz.json_values import production_stack
from tests.unit.fuzz.record_inputs import (
    REDIS_IDS,
    TEXT,
    dynamodb_records,
    kafka_messages,
    kinesis_records,
    redis_fields,
    sqs_messages,
)

CONTEXT = ConnectorContext("fuzz", threading.Event(), FakeClock())
# The keys of each source's event record (ESM-SPEC §2.1-2.4; Redis: DESIGN §3).
KAFKA_KEYS = {"topic", "partition", "offset", "timestamp", "timestampType", "value", "headers"}
SQS_KEYS = {"messageId", "receiptHandle", "body", "attributes", "messageAttributes",
            "md5OfMessageAttributes", "md5OfBody", "eventSource", "eventSourceARN", "awsRegion"}
KINESIS_KEYS = {"kinesis", "eventSource", "eventVersion", "eventID", "eventName",
                "invokeIdentityArn", "awsRegion", "eventSourceARN"}
KINESIS_DATA_KEYS = {"kinesisSchemaVersion", "partitionKey", "sequenceNumber", "data",
                     "approximateArrivalTimestamp"}
DYNAMODB_KEYS = {"eventID", "eventName", "eventVersion", "eventSource", "awsRegion",
                 "dynamodb", "eventSourceARN"}
REDIS_KEYS = {"eventSource", "eventSourceARN", "stream", "messageId", "fields", "attributes"}
KINESIS_ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/orders"
DYNAMODB_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2024-01-01T00:00:00"


def matchers() -> st.SearchStrategy[Matcher | None]:
    def compiled(pattern: Any) -> Matcher | None:
        try:
            return compile_pattern(pattern)
        except FilterPatternError:
            return None
    return pattern_objects(max_leaves=6).map(compiled)


def assert_json(value: Any) -> bytes:
    """The value encodes with orjson (what the invoker and destinations use)."""
    encoded = orjson.dumps(value)
    assert orjson.loads(encoded) is not None
    return encoded


def assert_filterable(records: Sequence[Record], matcher: Matcher | None) -> None:
    for record in records:
        view = record.filter_view if record.filter_view is not None else record.payload
        document = view if type(view) is dict else dict(view)  # as the reader does
        if matcher is not None:
            with production_stack():  # a reader thread's stack, not Hypothesis's
                assert type(matcher.matches(document)) is bool


@given(messages=st.lists(kafka_messages(), min_size=1, max_size=4), matcher=matchers())
def test_kafka_records_and_events_from_any_consumer_record(
        messages: list[Any], matcher: Matcher | None) -> None:
    records = [to_record(message, now=1700000000.0) for message in messages]
    events = KafkaEvents(["127.0.0.1:9092"])
    for message, record in zip(messages, records, strict=True):
        payload = orjson.loads(assert_json(record.payload))
        assert set(payload) - {"key"} == KAFKA_KEYS and ("key" in payload) == (
            message.key() is not None)
        assert payload["offset"] == message.offset() and record.size_bytes >= len(
            orjson.dumps(record.payload))
        value = payload["value"]
        assert (value is None) if message.value() is None else (
            base64.b64decode(value) == message.value())
        assert parse_item_identifier({"partition": record.lane,
                                      "offset": message.offset()}) == record.item_id
    event = orjson.loads(assert_json(events.build_event(records)))
    assert event["eventSource"] == "SelfManagedKafka"
    assert sum(len(rs) for rs in event["records"].values()) == len(records)
    assert_json(events.batch_info(records))
    assert_filterable(records, matcher)


@given(entries=st.lists(st.tuples(REDIS_IDS, redis_fields()), min_size=1, max_size=4),
       decoded=st.booleans(), body_field=st.sampled_from(["body", "type", "\udcff"]),
       stream=TEXT, matcher=matchers())
def test_redis_records_and_events_from_any_entry(
        entries: list[tuple[str, list[bytes]]], decoded: bool, body_field: str, stream: str,
        matcher: Matcher | None) -> None:
    decoder = EntryDecoder("redis://127.0.0.1:6379/0", [stream], "esm", body_field)
    # Off the wire as bytes, or decoded by the connection with surrogateescape (RedisPipe)
    wire = [(i, [f.decode("utf-8", "surrogateescape") for f in fields] if decoded else fields)
            for i, fields in entries]
    records = decoder.new_entries(stream, wire, handle=None)
    assert [r.item_id for r in records] == [i for i, _ in entries]
    for record, (_, fields) in zip(records, entries, strict=True):
        assert record.encoded == assert_json(record.payload)
        assert set(record.payload) - {"body"} == REDIS_KEYS
        names = {f.decode("utf-8", "backslashreplace") for f in fields[0::2]}
        assert set(record.payload["fields"]) == names
        assert ("body" in record.payload) == (body_field in record.payload["fields"])
    body = records_event_body(records)
    assert body is not None and orjson.loads(body)["Records"][0]["eventSource"] == (
        "redis:streams")
    assert_json(decoder.batch_info(records))
    assert_filterable(records, matcher)


@given(messages=st.lists(sqs_messages(), min_size=1, max_size=4), fifo=st.booleans(),
       matcher=matchers())
def test_sqs_records_and_events_from_any_message(
        messages: list[dict[str, Any]], fifo: bool, matcher: Matcher | None) -> None:
    queue = QueueInfo("arn:aws:sqs:us-east-1:000000000000:q", "us-east-1", fifo)
    records = [convert(message, queue).to_record("slot-0") for message in messages]
    for record, message in zip(records, messages, strict=True):
        payload = orjson.loads(assert_json(record.payload))
        assert set(payload) == SQS_KEYS and payload["eventSource"] == "aws:sqs"
        assert payload["body"] == message["Body"]
        if message["MessageId"].strip():
            assert normalise_item_identifier(message["MessageId"]) == record.item_id
    event = orjson.loads(assert_json(build_event(records)))
    assert len(event["Records"]) == len(records)
    assert_json(batch_info(records, queue, "http://127.0.0.1:9324/000000000000/q"))
    assert_filterable(records, matcher)


@given(raws=st.lists(kinesis_records(), min_size=1, max_size=4), matcher=matchers())
def test_kinesis_records_and_events_from_any_record(
        raws: list[dict[str, Any]], matcher: Matcher | None) -> None:
    source = KinesisSource(KinesisSettings(stream_arn=KINESIS_ARN, starting_position="LATEST",
                                           region="us-east-1"), CONTEXT)
    records = [source.convert(raw, "shardId-000000000000") for raw in raws]
    for record, raw in zip(records, raws, strict=True):
        payload = orjson.loads(assert_json(record.payload))
        assert set(payload) == KINESIS_KEYS and set(payload["kinesis"]) == KINESIS_DATA_KEYS
        kinesis = payload["kinesis"]
        assert base64.b64decode(kinesis["data"]) == raw["Data"]
        assert source.item_identifier(kinesis["sequenceNumber"]) == record.item_id
    assert_json(source.build_event(records))
    assert_json(source.batch_info(records))
    assert_filterable(records, matcher)


@given(raws=st.lists(dynamodb_records(), min_size=1, max_size=4), matcher=matchers())
def test_dynamodb_records_and_events_from_any_record(
        raws: list[dict[str, Any]], matcher: Matcher | None) -> None:
    source = DynamoDBStreamsSource(DynamoDBStreamsSettings(
        stream_arn=DYNAMODB_ARN, starting_position="LATEST", region="us-east-1"), CONTEXT)
    records = [source.convert(raw, "shardId-000000000000") for raw in raws]
    for record in records:
        payload = orjson.loads(assert_json(record.payload))
        assert set(payload) - {"userIdentity"} == DYNAMODB_KEYS
        assert payload["eventSource"] == "aws:dynamodb"
        assert payload["dynamodb"]["SequenceNumber"] == record.item_id
    assert_json(source.build_event(records))
    assert_json(source.batch_info(records))
    assert_filterable(records, matcher)
