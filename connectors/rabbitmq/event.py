"""Pure translation from AMQP deliveries to AWS's `aws:rmq` event (ESM-SPEC §2.6).

    {"eventSource": "aws:rmq", "eventSourceArn": "arn:aws:mq:...",
     "rmqMessagesByQueue": {"<queue>::<vhost>": [
        {"basicProperties": {15 keys, null when unset}, "redelivered": false,
         "data": "<base64 body>"}]}}

Field types are what typed Lambda clients (Go, Java, Rust, .NET, Powertools) require:
`deliveryMode` and `priority` always ints (absent → 1 and 0), `bodySize` an int,
`expiration` a string, `timestamp` Java Gson's default date string in UTC
(`"Jan 1, 1970, 12:33:41 AM"`, month names from a table, never the locale); header values
in the Java client's Gson encoding: long strings `{"bytes": [signed bytes]}`, numbers,
booleans, nested tables as objects, arrays as arrays, void as null, timestamps as Gson
dates. pika cannot tell a long string that is not UTF-8 from a byte array (it returns
bytes for both): both become `{"bytes": [...]}`.

No client here: callable from lane-worker threads (esm.interfaces.Source).
"""

from __future__ import annotations

from array import array
from binascii import b2a_base64
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple

import orjson

from esm.records import json_or_text

EVENT_SOURCE = "aws:rmq"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_ABSENT = object()  # data not in the filter view
_UNDECODED = object()  # not decoded yet


dumps = orjson.dumps


class Delivery(NamedTuple):
    """Record.handle: what the source needs to answer one delivery."""

    tag: int
    key: str  # "<queue>::<vhost>", the event's grouping key
    channel: int  # which channel delivered it: tags mean nothing on another


def queue_key(queue: str, vhost: str) -> str:
    """ESM-SPEC §2.6: messages are grouped under `"<queue>::<virtual host>"`."""
    return f"{queue}::{vhost}"


def default_arn(host: str, vhost: str) -> str:
    """A stable eventSourceArn for a broker that has none (not Amazon MQ)."""
    return f"arn:aws:mq:local:000000000000:broker:{host}:{vhost}"


def gson_date(epoch_seconds: float) -> str:
    """Java Gson's default date format, UTC, en-US: `"Jan 1, 1970, 12:33:41 AM"`."""
    moment = datetime.fromtimestamp(int(epoch_seconds), tz=UTC)
    hour = moment.hour % 12 or 12
    half = "AM" if moment.hour < 12 else "PM"
    return (f"{_MONTHS[moment.month - 1]} {moment.day}, {moment.year}, "
            f"{hour}:{moment.minute:02d}:{moment.second:02d} {half}")


def parse_gson_date(text: str) -> int | None:
    """Epoch seconds of a `gson_date` string (UTC); None when it is not one."""
    try:
        month, day, year, clock, half = text.replace(",", "").split()
        hour, minute, second = (int(part) for part in clock.split(":"))
        moment = datetime(int(year), _MONTHS.index(month) + 1, int(day),
                          hour % 12 + (12 if half == "PM" else 0), minute, second, tzinfo=UTC)
    except ValueError:
        return None
    return int(moment.timestamp())


def signed_bytes(value: bytes) -> list[int]:
    """Java bytes are signed (-128…127), as in Kafka headers (ESM-SPEC §2.4)."""
    return array("b", value).tolist()


def header_value(value: Any) -> Any:
    """One AMQP field-table value in the Java client's Gson encoding (module docstring)."""
    if isinstance(value, str):
        return {"bytes": signed_bytes(value.encode("utf-8"))}
    if isinstance(value, bytes | bytearray):
        return {"bytes": signed_bytes(bytes(value))}
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return gson_date(aware.timestamp())
    if isinstance(value, Mapping):
        return {str(k): header_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [header_value(v) for v in value]
    return str(value)  # nothing else comes out of pika's decoder


def basic_properties(props: Any, body_size: int) -> dict[str, Any]:
    """All 15 keys of `basicProperties`, in AWS's order, null when unset (ESM-SPEC §2.6)."""
    headers = props.headers
    timestamp = props.timestamp
    expiration = props.expiration
    return {
        "contentType": props.content_type,
        "contentEncoding": props.content_encoding,
        "headers": None if headers is None else {str(k): header_value(v)
                                                 for k, v in headers.items()},
        "deliveryMode": props.delivery_mode or 1,
        "priority": props.priority or 0,
        "correlationId": props.correlation_id,
        "replyTo": props.reply_to,
        "expiration": None if expiration is None else str(expiration),
        "messageId": props.message_id,
        "timestamp": None if timestamp is None else gson_date(timestamp),
        "type": props.type,
        "userId": props.user_id,
        "appId": props.app_id,
        "clusterId": props.cluster_id,
        "bodySize": body_size,
    }


def message(props: Any, redelivered: bool, body: bytes) -> dict[str, Any]:
    """One element of `rmqMessagesByQueue[key]`."""
    return {"basicProperties": basic_properties(props, len(body)),
            "redelivered": bool(redelivered),
            "data": b2a_base64(body, newline=False).decode("ascii")}


def envelope(arn: str) -> dict[str, Any]:
    return {"eventSource": EVENT_SOURCE, "eventSourceArn": arn}


def build_event(arn: str, grouped: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, Any]:
    """The event for messages already grouped by `"<queue>::<vhost>"`, in delivery order."""
    return {**envelope(arn), "rmqMessagesByQueue": {k: list(v) for k, v in grouped.items()}}


def by_queue(records: Sequence[Any], field: str) -> dict[str, list[Any]]:
    """`field` ("payload" or "encoded") of each record, grouped by `"<queue>::<vhost>"` in
    order of first appearance, records in delivery order within each group."""
    grouped: dict[str, list[Any]] = {}
    for record in records:
        grouped.setdefault(record.handle.key, []).append(getattr(record, field))
    return grouped


def encode_event(arn: str, grouped: Mapping[str, Sequence[bytes]]) -> bytes:
    """`orjson.dumps(build_event(...))`, byte for byte, joined from encoded messages."""
    head = orjson.dumps(envelope(arn))[:-1]
    parts = [orjson.dumps(key) + b":[" + b",".join(encoded) + b"]"
             for key, encoded in grouped.items()]
    return head + b',"rmqMessagesByQueue":{' + b",".join(parts) + b"}}"


def overhead_bytes(arn: str, keys: Sequence[str]) -> int:
    """The encoded event around the messages, for the longest queue key (6 MB limit)."""
    return max(len(encode_event(arn, {key: []})) for key in keys)


def batch_info(arn: str, records: Sequence[Any]) -> dict[str, Any]:
    """`RabbitMQBatchInfo` of a notice (esm's shape; AWS has no MQ destinations): batch size,
    event source, and per `"<queue>::<vhost>"` the message count and first and last
    messageId (null when the message has none)."""
    queues: dict[str, dict[str, Any]] = {}
    for record in records:
        message_id = record.payload["basicProperties"]["messageId"]
        entry = queues.get(record.handle.key)
        if entry is None:
            entry = queues[record.handle.key] = {"messageCount": 0,
                                                 "firstMessageId": message_id}
        entry["messageCount"] += 1
        entry["lastMessageId"] = message_id
    return {"batchSize": len(records), "eventSourceArn": arn, "queues": queues}


def decode_data(raw: bytes) -> Any:
    """ESM-SPEC §2.6, §3.4: `data` decoded like a Kafka value: the JSON document when the
    body is valid JSON, else the UTF-8 string, else absent (metadata-only filtering)."""
    try:
        return json_or_text(raw)
    except UnicodeDecodeError:
        return _ABSENT


class FilterView(Mapping[str, Any]):
    """The document filters match: the message with `data` decoded (`decode_data`),
    lazily, so that a mapping without filters never pays for it."""

    __slots__ = ("_message", "_body", "_data")

    def __init__(self, message: Mapping[str, Any], body: bytes) -> None:
        self._message = message
        self._body = body
        self._data: Any = _UNDECODED

    def _decoded(self) -> Any:
        if self._data is _UNDECODED:
            self._data = decode_data(self._body)
        return self._data

    def __getitem__(self, key: str) -> Any:
        if key != "data":
            return self._message[key]
        data = self._decoded()
        if data is _ABSENT:
            raise KeyError(key)
        return data

    def __iter__(self) -> Iterator[str]:
        present = self._decoded() is not _ABSENT
        return (k for k in self._message if k != "data" or present)

    def __len__(self) -> int:
        return sum(1 for _ in self)
