"""What brokers hand the record builders, at its oddest: payload bytes that are not UTF-8,
valid JSON, deep JSON, huge, or empty; text with every kind of character; timestamps and
ids anywhere in their types' ranges."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from hypothesis import strategies as st

from tests.unit.fuzz.json_values import deep_nesting, json_values
from tests.unit.kafka.fake_messages import Msg

# Text a broker can hold (UTF-8: no lone surrogates), and text that is not quite that.
TEXT = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=30)
SURROGATE_TEXT = st.builds(lambda a, b: a + "\ud800" + b, TEXT, TEXT)
PAYLOADS: st.SearchStrategy[bytes] = st.one_of(
    st.binary(max_size=64),
    TEXT.map(str.encode),
    json_values().map(lambda v: json.dumps(v).encode()),
    deep_nesting(1030).map(lambda v: json.dumps(v).encode()),  # past orjson's 1024 limit
    st.sampled_from([b"", b" ", b"\xff\xfe\x00", b"\xef\xbb\xbf{}", b"\xed\xa0\x80",
                     b"1e400", b"-0", b"123456789012345678901234567890", b'"\\ud800"',
                     b'{"a": "' + b"\xff" * 10 + b'"}', b"\x00" * 16]),
    st.builds(lambda unit, times: unit * times, st.sampled_from([b"x", b"\xff", b"["]),
              st.sampled_from([1000, 300_000])))
DIGITS = st.integers(0, 2**64 - 1).map(str)
MILLIS = st.one_of(st.integers(0, 2**63 - 1), st.sampled_from([0, 1, 253402300799999,
                                                               253402300800000, 2**62]))
DATETIMES = st.datetimes(min_value=dt.datetime(1970, 1, 2), max_value=dt.datetime(9999, 1, 1),
                         timezones=st.just(dt.UTC))


def kafka_messages() -> st.SearchStrategy[Any]:
    """confluent-kafka Messages (the methods esm reads), as tests.unit.kafka's fake."""
    return st.builds(
        Msg,
        topic=st.from_regex(r"[a-zA-Z0-9._-]{1,40}", fullmatch=True),
        partition=st.integers(0, 2**31 - 1), offset=st.integers(0, 2**63 - 1),
        timestamp=st.one_of(st.none(), st.just(-1), MILLIS, st.integers(-(2**63), -2)),
        timestamp_type=st.sampled_from([0, 1, 2, -1]),
        key=st.none() | PAYLOADS, value=st.none() | PAYLOADS,
        headers=st.lists(st.tuples(TEXT, st.none() | st.binary(max_size=8)), max_size=3),
        leader_epoch=st.none() | st.integers(0, 100))


def redis_fields() -> st.SearchStrategy[list[bytes]]:
    """An entry's fields off the wire: [name, value, ...] (names may repeat)."""
    names = st.one_of(st.sampled_from([b"body", b"type", b"\xff", b""]), st.binary(max_size=6))
    return st.lists(st.tuples(names, PAYLOADS), max_size=4).map(
        lambda pairs: [part for pair in pairs for part in pair])


REDIS_IDS = st.one_of(st.builds(lambda ms, seq: f"{ms}-{seq}", MILLIS, DIGITS),
                      st.sampled_from(["0-1", "18446744073709551615-18446744073709551615"]))


def sqs_messages() -> st.SearchStrategy[dict[str, Any]]:
    """ReceiveMessage entries as boto3 returns them."""
    attribute = st.one_of(
        st.fixed_dictionaries({"DataType": st.sampled_from(["String", "Number", "String.x"]),
                               "StringValue": TEXT}),
        st.fixed_dictionaries({"DataType": st.just("Binary"), "BinaryValue": PAYLOADS}),
        st.fixed_dictionaries({"DataType": st.just("String"),
                               "StringListValues": st.lists(TEXT, max_size=2),
                               "BinaryListValues": st.lists(st.binary(max_size=4),
                                                            max_size=2)}))
    attributes = st.fixed_dictionaries({}, optional={
        "SentTimestamp": MILLIS.map(str), "ApproximateReceiveCount": st.integers(1, 10**6).map(
            str), "ApproximateFirstReceiveTimestamp": MILLIS.map(str),
        "MessageGroupId": TEXT, "SequenceNumber": DIGITS, "MessageDeduplicationId": TEXT})
    return st.fixed_dictionaries(
        {"MessageId": TEXT, "ReceiptHandle": TEXT,
         "Body": st.one_of(TEXT, PAYLOADS.map(lambda b: b.decode("utf-8", "replace")))},
        optional={"Attributes": attributes, "MD5OfBody": TEXT, "MD5OfMessageAttributes": TEXT,
                  "MessageAttributes": st.dictionaries(TEXT, attribute, max_size=3)})


def kinesis_records() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({
        "Data": PAYLOADS, "SequenceNumber": DIGITS, "PartitionKey": TEXT,
        "ApproximateArrivalTimestamp": st.one_of(DATETIMES, st.floats(0, 2.5e11))},
        optional={"EncryptionType": st.sampled_from(["NONE", "KMS"])})


def _attribute_values() -> st.SearchStrategy[Any]:
    """DynamoDB AttributeValues as boto3 returns them (binary as bytes)."""
    scalar = st.one_of(
        st.builds(lambda s: {"S": s}, TEXT), st.builds(lambda n: {"N": n}, DIGITS),
        st.builds(lambda b: {"B": b}, PAYLOADS), st.builds(lambda b: {"BOOL": b}, st.booleans()),
        st.just({"NULL": True}), st.builds(lambda ss: {"SS": ss}, st.lists(TEXT, max_size=3)),
        st.builds(lambda bs: {"BS": bs}, st.lists(st.binary(max_size=4), max_size=3)))
    return st.recursive(scalar, lambda inner: st.one_of(
        st.builds(lambda m: {"M": m}, st.dictionaries(TEXT, inner, max_size=3)),
        st.builds(lambda items: {"L": items}, st.lists(inner, max_size=3))), max_leaves=10)


def dynamodb_records() -> st.SearchStrategy[dict[str, Any]]:
    image = st.dictionaries(TEXT, _attribute_values(), max_size=4)
    stream = st.fixed_dictionaries(
        {"SequenceNumber": DIGITS, "ApproximateCreationDateTime": DATETIMES,
         "SizeBytes": st.integers(0, 400_000),
         "StreamViewType": st.sampled_from(["NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES",
                                            "KEYS_ONLY"])},
        optional={"Keys": image, "NewImage": image, "OldImage": image})
    return st.fixed_dictionaries(
        {"eventID": TEXT, "eventName": st.sampled_from(["INSERT", "MODIFY", "REMOVE"]),
         "dynamodb": stream},
        optional={"eventVersion": st.just("1.1"), "awsRegion": TEXT, "userIdentity":
                  st.just({"type": "Service", "principalId": "dynamodb.amazonaws.com"})})
