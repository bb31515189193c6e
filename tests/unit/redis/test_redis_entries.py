"""Redis stream entries → Records: event shape, filter view, binary fields (DESIGN §3)."""

from __future__ import annotations

import orjson

from connectors.redis.entries import (
    EntryDecoder,
    decode_fields,
    entry_timestamp_ms,
    event_source_arn,
)
from esm.clock import iso_utc

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


def test_iso_utc_is_utc_with_milliseconds() -> None:
    assert iso_utc(0.25) == "1970-01-01T00:00:00.250Z"


def test_wire_field_list_decodes_like_the_parsed_dict() -> None:
    # Given the same entry as redis-py's dict and as the wire's flat list (a name twice)
    flat = [b"type", b"refund", b"body", b'{"amount": 3}', b"type", b"order"]
    parsed = {b"type": b"order", b"body": b'{"amount": 3}'}
    # When both are decoded
    from_wire = decoder().record("orders", "5-1", flat, 1)
    from_dict = decoder().record("orders", "5-1", parsed, 1)
    # Then they are the same record: the last value of a repeated name wins
    assert from_wire.payload == from_dict.payload
    assert from_wire.payload["fields"] == {"type": "order", "body": '{"amount": 3}'}
    assert from_wire.filter_view == from_dict.filter_view
    assert from_wire.size_bytes == from_dict.size_bytes


def test_wire_field_list_with_binary_values_falls_back_to_base64() -> None:
    record = decoder().record("orders", "1-0", [b"body", b"\xff\x00", b"t", b"ok"], 1)
    assert record.payload["attributes"]["binaryFields"] == ["body"]
    assert record.payload["fields"] == {"body": "/wA=", "t": "ok"}


def test_json_body_with_leading_whitespace_is_still_parsed_for_the_filter() -> None:
    record = decoder().record("orders", "1-0", {b"body": b'\n {"a": 1}'}, 1)
    assert record.filter_view is not None and record.filter_view["body"] == {"a": 1}


def test_json_scalar_bodies_are_parsed_and_words_are_not() -> None:
    views = {raw: decoder().record("orders", "1-0", {b"body": raw}, 1).filter_view
             for raw in (b"true", b"-1.5", b'"quoted"', b"trueish", b"", b"hello")}
    assert views[b"true"] is not None and views[b"true"]["body"] is True
    assert views[b"-1.5"] is not None and views[b"-1.5"]["body"] == -1.5
    assert views[b'"quoted"'] is not None and views[b'"quoted"']["body"] == "quoted"
    assert views[b"trueish"] is None and views[b""] is None and views[b"hello"] is None


def test_a_read_reply_decodes_exactly_like_record_by_record() -> None:
    # Given one XREADGROUP reply with every kind of entry: JSON, plain and empty bodies, no
    # body field, a repeated name, a binary value, a parsed dict, and a deleted entry
    entries = [
        (b"1700000000000-0", [b"body", b'{"amount": 12}', b"type", b"order"]),
        (b"1700000000000-1", [b"body", b"hello"]),
        (b"1700000000001-0", [b"body", b""]),
        (b"1700000000002-0", [b"other", b"x"]),
        (b"1700000000003-0", [b"type", b"refund", b"body", b"[1]", b"type", b"order"]),
        (b"1700000000004-0", [b"body", b"\xff\x00", b"t", b"ok"]),
        (b"1700000000005-0", {b"body": b'{"a": 1}'}),
        (b"1700000000006-0", None),
        (b"1700000000007-0", [b"body", b"  {not json"]),
    ]
    handle = object()
    # When the reply is decoded at once as the pipe's connection gives it (str, non-UTF-8
    # bytes as lone surrogates), and entry by entry from the bytes
    def as_text(value: object) -> object:
        if isinstance(value, bytes):
            return value.decode("utf-8", "surrogateescape")
        if isinstance(value, list):
            return [as_text(v) for v in value]
        return value
    decoded = [(as_text(raw_id), as_text(fields) if isinstance(fields, list) else fields)
               for raw_id, fields in entries]
    batch = decoder().new_entries("orders", decoded, handle)
    assert decoder().new_entries("orders", entries, handle)[0].payload == batch[0].payload
    one_by_one = [decoder().record("orders", raw_id.decode(), fields, 1, handle)
                  for raw_id, fields in entries if fields is not None]
    # Then both give the same records in the same order; the deleted entry is skipped
    assert [r.item_id for r in batch] == [r.item_id for r in one_by_one]
    for got, want in zip(batch, one_by_one, strict=True):
        assert (got.lane, got.position, got.payload, got.filter_view, got.size_bytes,
                got.timestamp, got.delivery_count, got.handle) == (
                want.lane, want.position, want.payload, want.filter_view, want.size_bytes,
                want.timestamp, want.delivery_count, want.handle)
        assert list(got.payload) == list(want.payload)  # key order: the encoded event's
        assert got.size_bytes == len(orjson.dumps(got.payload))
    assert batch[5].payload["attributes"]["binaryFields"] == ["body"]
    assert batch[0].filter_view is not None and batch[0].filter_view["body"] == {"amount": 12}
    assert batch[1].filter_view is None and batch[2].filter_view is None


def test_the_event_joined_from_record_encodings_is_byte_for_byte_the_encoded_event() -> None:
    from esm.records import Record, records_event_body

    entries = [
        (b"1700000000000-0", [b"body", b'{"amount": 12, "note": "caf\xc3\xa9 \\"q\\""}']),
        (b"1700000000000-1", [b"body", b"\xff\x00", b"t", b"ok"]),  # binary: base64 path
        (b"1700000000000-2", [b"other", b"x\ny"]),
    ]
    records = decoder().new_entries("orders", entries, None)
    records.append(decoder().record("orders", "1700000000001-0", {b"body": b"[1]"}, 3))
    document = {"Records": [r.payload for r in records]}
    assert records_event_body(records) == orjson.dumps(document)
    assert all(r.size_bytes == len(r.encoded or b"") for r in records)
    # A record without its own encoding: no shortcut (the caller encodes the document)
    plain = Record("orders", "1", "1", {"a": 1}, 7, 0.0)
    assert records_event_body([*records, plain]) is None
    assert records_event_body([]) == b'{"Records":[]}' == orjson.dumps({"Records": []})


def test_the_ordering_key_field_value_is_the_records_ordering_key_on_every_path() -> None:
    # Given a decoder keeping order by the `user` field
    keyed = EntryDecoder(URL, ["orders"], "esm", "body", ordering_key_field="user")
    # When entries come as new entries off the wire, and as reclaimed entries
    new = keyed.new_entries("orders", [["1-0", ["user", "u1", "body", "{}"]],
                                       ["1-1", ["body", "{}"]]], handle=None)
    reclaimed = keyed.record("orders", "1-2", {b"user": b"u2", b"body": b"x"}, 2)
    # Then the field's value is the key; an entry without it has none (the stream's slot)
    assert [r.ordering_key for r in new] == ["u1", None]
    assert reclaimed.ordering_key == "u2"
    # And without the setting no entry has a key
    assert decoder().record("orders", "1-3", {b"user": b"u1"}, 1).ordering_key is None


def test_batch_info_of_an_entry_id_past_year_9999_does_not_raise() -> None:
    # Given an entry added with an explicit id whose milliseconds lie past year 9999
    record = decoder().record("orders", "18446744073709551615-0", {b"body": b"x"}, 1)
    # When its batch is described for a notice / Then the time is clamped, not a ValueError
    info = decoder().batch_info([record])
    assert info["approximateArrivalOfFirstRecord"] == "9999-12-31T23:59:59.000Z"


def test_no_body_is_parsed_for_a_mapping_without_filters() -> None:
    # Given a decoder for a mapping that does not filter
    plain = EntryDecoder(URL, ["orders"], "esm", "body", filter_views=False)
    entries = [("1700000000000-0", ["body", '{"amount": 12}'])]
    fields = {b"body": b'{"amount": 12}'}
    # When a first delivery and a redelivery are decoded
    records = [plain.new_entries("orders", entries, None)[0],
               plain.record("orders", "1700000000000-0", fields, 2)]
    # Then neither has a filter view, and their payloads are those a filtering mapping gets
    filtering = decoder()
    assert [r.filter_view for r in records] == [None, None]
    assert records[0].payload == filtering.new_entries("orders", entries, None)[0].payload
    assert records[1].payload == filtering.record("orders", "1700000000000-0", fields,
                                                  2).payload
