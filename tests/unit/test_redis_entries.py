"""Redis stream entries → Records: event shape, filter view, binary fields (DESIGN §3)."""

from __future__ import annotations

import orjson

from connectors.sources.redis_entries import (
    EntryDecoder,
    decode_fields,
    entry_timestamp_ms,
    event_source_arn,
    iso_millis,
)

URL = "redis://user:secret@cache:6379/0"


def decoder(body_field: str = "body") -> EntryDecoder:
    return EntryDecoder(URL, ["orders", "refunds"], "esm", body_field)


def test_record_has_the_documented_event_shape() -> None:
    # Given an entry with a JSON body
    fields = {b"type": b"order", b"body": b'{"amount": 12}'}
    # When it is decoded as a first delivery
    record = decoder().record("orders", "1700000000000-0", fields, 1)
    # Then the payload is DESIGN §3's record shape
    assert record.payload == {
        "eventSource": "redis:streams",
        "eventSourceARN": "redis://cache:6379/0/orders",
        "stream": "orders", "messageId": "1700000000000-0",
        "fields": {"type": "order", "body": '{"amount": 12}'},
        "body": '{"amount": 12}',
        "attributes": {"deliveryCount": "1", "timestamp": "1700000000000",
                       "consumerGroup": "esm"},
    }
    assert (record.lane, record.position, record.item_id) == (
        "orders", "1700000000000-0", "1700000000000-0")
    assert record.timestamp == 1_700_000_000.0
    assert record.delivery_count == 1


def test_size_bytes_is_the_encoded_payload_size() -> None:
    record = decoder().record("orders", "1-0", {b"body": "é".encode()}, 3)
    assert record.size_bytes == len(orjson.dumps(record.payload))


def test_filter_view_parses_a_json_body_and_keeps_metadata() -> None:
    record = decoder().record("orders", "1-0", {b"body": b'{"a": [1, 2]}', b"k": b"v"}, 2)
    assert record.filter_view is not None
    assert record.filter_view["body"] == {"a": [1, 2]}
    assert record.filter_view["fields"] == {"body": '{"a": [1, 2]}', "k": "v"}
    assert record.filter_view["attributes"]["deliveryCount"] == "2"
    assert record.payload["body"] == '{"a": [1, 2]}'  # the event keeps the raw string


def test_plain_string_body_is_filtered_as_the_payload_itself() -> None:
    record = decoder().record("orders", "1-0", {b"body": b"hello world"}, 1)
    assert record.filter_view is None  # None means "filter on payload", body is a string
    assert record.payload["body"] == "hello world"


def test_entry_without_the_body_field_has_no_body_key() -> None:
    record = decoder().record("orders", "1-0", {b"other": b"x"}, 1)
    assert "body" not in record.payload
    assert record.filter_view is None


def test_configured_body_field_is_used() -> None:
    record = decoder("payload").record("orders", "1-0", {b"payload": b"[1]", b"body": b"x"}, 1)
    assert record.payload["body"] == "[1]"
    assert record.filter_view is not None and record.filter_view["body"] == [1]


def test_non_utf8_values_are_base64_and_listed_in_binary_fields() -> None:
    # Given a binary body and a text field
    record = decoder().record("orders", "1-0", {b"body": b"\xff\x00", b"t": b"ok"}, 1)
    # Then the binary value is base64 and named, and is not JSON-parsed for filtering
    assert record.payload["fields"] == {"body": "/wA=", "t": "ok"}
    assert record.payload["body"] == "/wA="
    assert record.payload["attributes"]["binaryFields"] == ["body"]
    assert record.filter_view is None


def test_non_utf8_field_names_are_escaped_not_dropped() -> None:
    fields, binary = decode_fields({b"n\xff": b"v"})
    assert fields == {"n\\xff": "v"}
    assert binary == []


def test_event_source_arn_never_contains_credentials() -> None:
    assert event_source_arn(URL, "s") == "redis://cache:6379/0/s"
    assert event_source_arn("rediss://:pw@h:6380/3", "s") == "rediss://h:6380/3/s"
    assert event_source_arn("redis://h", "s") == "redis://h:6379/0/s"
    assert event_source_arn("redis://[::1]:7000/1", "s") == "redis://[::1]:7000/1/s"
    assert event_source_arn("unix:///run/redis.sock?db=2", "s") == "unix:///run/redis.sock/2/s"


def test_entry_timestamp_is_the_id_millisecond_part() -> None:
    assert entry_timestamp_ms("1700000000123-7") == 1_700_000_000_123
    assert entry_timestamp_ms("garbage") == 0


def test_batch_info_names_the_stream_ids_arrivals_and_deliveries() -> None:
    d = decoder()
    records = [d.record("refunds", "1700000000000-0", {b"body": b"a"}, 1),
               d.record("refunds", "1700000000500-1", {b"body": b"b"}, 4)]
    assert d.batch_info(records) == {
        "stream": "refunds", "eventSourceArn": "redis://cache:6379/0/refunds",
        "consumerGroup": "esm", "startMessageId": "1700000000000-0",
        "endMessageId": "1700000000500-1",
        "approximateArrivalOfFirstRecord": "2023-11-14T22:13:20.000Z",
        "approximateArrivalOfLastRecord": "2023-11-14T22:13:20.500Z",
        "batchSize": 2, "maxDeliveryCount": 4,
    }


def test_iso_millis_is_utc_with_milliseconds() -> None:
    assert iso_millis(0.25) == "1970-01-01T00:00:00.250Z"
