"""Kafka record → AWS shapes: payload, filter view, event, item identifiers, batch info."""

from __future__ import annotations

import base64

import orjson
from hypothesis import given
from hypothesis import strategies as st

from connectors.kafka.event import (
    KafkaEvents,
    message_of,
    parse_item_identifier,
    record_payload,
    to_record,
)
from tests.unit.kafka.fake_messages import Msg


def test_record_has_aws_shape_with_base64_key_value_and_signed_header_bytes() -> None:
    record = to_record(Msg(15, headers=[("h", "ë".encode())]), now=0.0)
    assert record.lane == "orders-2" and record.position == "15"
    assert record.item_id == "orders-2@15"
    assert record.payload == {
        "topic": "orders", "partition": 2, "offset": 15, "timestamp": 1_545_084_650_987,
        "timestampType": "CREATE_TIME", "key": base64.b64encode(b"k1").decode(),
        "value": base64.b64encode(b'{"type": "order", "amount": 12}').decode(),
        "headers": [{"h": [-61, -85]}]}
    assert record.timestamp == 1_545_084_650.987


def test_null_key_is_omitted_and_null_value_is_null() -> None:
    record = to_record(Msg(1, key=None, value=None), now=0.0)
    assert "key" not in record.payload
    assert record.payload["value"] is None


def test_the_record_key_keeps_order_and_null_keys_share_the_partition_slot() -> None:
    # parallelization_factor > 1 orders by Record.ordering_key: same key, same value;
    # a null key is None, which the lane buffer maps to the partition's shared slot
    a, b = to_record(Msg(1, key=b"k1"), now=0.0), to_record(Msg(2, key=b"k1"), now=0.0)
    assert a.ordering_key == b.ordering_key == base64.b64encode(b"k1").decode()
    assert to_record(Msg(3, key=b"k2"), now=0.0).ordering_key != a.ordering_key
    assert to_record(Msg(4, key=None), now=0.0).ordering_key is None


def test_size_covers_the_encoded_record_and_its_partition_key_share() -> None:
    record = to_record(Msg(1), now=0.0)
    events = KafkaEvents(["b:9092"])
    encoded = len(orjson.dumps(events.build_event([record])))
    assert events.event_overhead_bytes() + record.size_bytes >= encoded
    assert record.size_bytes >= len(orjson.dumps(record.payload))


def test_missing_broker_timestamp_falls_back_to_poll_time() -> None:
    record = to_record(Msg(1, timestamp=-1, timestamp_type=0), now=123.0)
    assert record.timestamp == 123.0
    assert record.payload["timestampType"] == "NO_TIMESTAMP_TYPE"


def test_timestamp_types_are_confluents_numbering() -> None:
    # confluent-kafka: 1 CREATE_TIME, 2 LOG_APPEND_TIME (kafka-python counted from 0)
    assert to_record(Msg(1, timestamp_type=1), now=0.0).payload["timestampType"] == "CREATE_TIME"
    assert to_record(Msg(1, timestamp_type=2), now=0.0).payload["timestampType"] == \
        "LOG_APPEND_TIME"


def test_the_leader_epoch_rides_on_the_record_for_its_commit() -> None:
    assert to_record(Msg(1, leader_epoch=7), now=0.0).handle == 7
    assert to_record(Msg(1, leader_epoch=None), now=0.0).handle is None


def test_filter_view_decodes_json_values() -> None:
    view = to_record(Msg(1), now=0.0).filter_view
    assert view is not None
    assert view["value"] == {"type": "order", "amount": 12}
    assert view["partition"] == 2 and "value" in view


def test_filter_view_keeps_plain_strings_and_drops_non_utf8_values() -> None:
    plain = to_record(Msg(1, value=b"error"), now=0.0).filter_view
    binary = to_record(Msg(2, value=b"\xff\xfe"), now=0.0).filter_view
    assert plain is not None and plain["value"] == "error"
    assert binary is not None and "value" not in binary and "value" not in list(binary)
    assert dict(binary)["topic"] == "orders"


def test_event_groups_partitions_in_offset_order() -> None:
    records = [to_record(Msg(o, partition=p), now=0.0) for p, o in [(1, 7), (0, 3), (1, 5)]]
    event = KafkaEvents(["a:1", "b:2"]).build_event(records)
    assert event["eventSource"] == "SelfManagedKafka"
    assert event["bootstrapServers"] == "a:1,b:2"
    assert [r["offset"] for r in event["records"]["orders-1"]] == [5, 7]
    assert [r["offset"] for r in event["records"]["orders-0"]] == [3]


def test_item_identifier_accepts_partition_and_integer_offset_only() -> None:
    assert parse_item_identifier({"partition": "orders-2", "offset": 15}) == "orders-2@15"
    for bad in [None, "", "orders-2@15", {"partition": "orders-2"},
                {"partition": "orders-2", "offset": "15"}, {"partition": "orders-2",
                                                             "offset": True},
                {"partition": "", "offset": 1}, {"partition": 2, "offset": 1},
                {"partition": "orders-2", "offset": -1}]:
        assert parse_item_identifier(bad) is None, bad


def test_batch_info_summarises_each_partition() -> None:
    records = [to_record(Msg(o, timestamp=1_700_000_000_000 + o), now=0.0) for o in (4, 5, 6)]
    info = KafkaEvents(["a:1"]).batch_info(records)
    assert info["batchSize"] == 3 and info["bootstrapServers"] == "a:1"
    assert info["payloadSize"] == sum(r.size_bytes for r in records)
    assert info["recordsInfo"] == {"orders-2": {
        "firstRecordOffset": "4", "lastRecordOffset": "6",
        "firstRecordTimestamp": "2023-11-14T22:13:20.004Z",
        "lastRecordTimestamp": "2023-11-14T22:13:20.006Z"}}


def test_batch_info_of_a_record_stamped_past_year_9999_does_not_raise() -> None:
    # Given a record whose producer set its CreateTime in year 10000 (Kafka takes any int64)
    record = to_record(Msg(1, timestamp=253_402_300_800_000), now=0.0)
    # When its batch is described for a notice / Then the time is clamped, not a ValueError
    info = KafkaEvents(["a:1"]).batch_info([record])["recordsInfo"]["orders-2"]
    assert info["firstRecordTimestamp"] == "9999-12-31T23:59:59.000Z"


def test_no_filter_view_is_built_for_a_mapping_without_filters() -> None:
    # Given a record read for a mapping that does not filter
    record = to_record(Msg(1), now=0.0, with_view=False)
    # Then it has no view, and its event payload and size are those of a filtered mapping's
    with_view = to_record(Msg(1), now=0.0)
    assert record.filter_view is None
    assert record.payload == with_view.payload
    assert record.size_bytes == with_view.size_bytes


@given(st.lists(st.tuples(st.text(min_size=1, max_size=8), st.integers(0, 3),
                          st.none() | st.binary(max_size=40), st.none() | st.binary(max_size=40),
                          st.lists(st.tuples(st.text(max_size=5), st.binary(max_size=4)),
                                   max_size=2)),
                min_size=1, max_size=6))
def test_batch_size_never_under_counts_the_encoded_event(
        specs: list[tuple[str, int, bytes | None, bytes | None,
                          list[tuple[str, bytes]]]]) -> None:
    # Given records of any topics, keys, values and headers
    records = [to_record(Msg(offset, value=value, key=key, topic=topic, partition=partition,
                             headers=headers), now=0.0)
               for offset, (topic, partition, key, value, headers) in enumerate(specs)]
    events = KafkaEvents(["b:9092"])
    # Then each size is its record object's encoding plus its share of the partition key
    for record in records:
        assert record.size_bytes == len(orjson.dumps(record.payload)) + \
            len(orjson.dumps(record.lane)) + 5
    # And the batcher's estimate (envelope, sizes, separators) covers the encoded event
    estimate = events.event_overhead_bytes() + sum(r.size_bytes for r in records) + len(records)
    assert estimate >= len(orjson.dumps(events.build_event(records)))


@given(key=st.none() | st.binary(max_size=20), value=st.none() | st.binary(max_size=50),
       headers=st.lists(st.tuples(st.text(max_size=5), st.binary(max_size=8)), max_size=3))
def test_redrive_to_source_sends_back_the_key_value_and_headers_the_event_carried(
        key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> None:
    payload = record_payload(Msg(3, key=key, value=value, headers=list(headers)))
    assert message_of(payload, "other") == ("orders", key, value, headers)
    assert message_of({k: v for k, v in payload.items() if k != "topic"}, "other")[0] == "other"
