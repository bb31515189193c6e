"""AMQP 1.0 messages → AWS's `aws:mq` event (pure: no I/O) — ESM-SPEC §2.6.

Field by field, from what an AMQP 1.0 consumer of ActiveMQ Classic sees: id → `messageID`
(one is made up when the producer set none), `creation_time` → `timestamp`, `durable` →
`deliveryMode` (2 persistent, 1 not), `correlation_id` → `correlationID`, `reply_to` →
`replyTo`, `subject` → `type` (JMSType), `expiry_time` → `expiration` (absolute epoch ms,
0 = never), `priority`, `application_properties` → `properties` (always present, values as
Java's `String.valueOf` writes them), header `delivery_count > 0` → `redelivered`. Times are
int epoch milliseconds. ActiveMQ Classic does not hand its broker in/out times to AMQP
clients, so `brokerInTime` is the best known (the creation time) and `brokerOutTime` the
receive time, never in > out. Unset `correlationID`, `type` are "" and `replyTo` "null", as
in events AWS delivered.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import orjson

from esm.records import Record

EVENT_SOURCE = "aws:mq"
TEXT = "jms/text-message"
BYTES = "jms/bytes-message"
DEFAULT_PRIORITY = 4  # AMQP 1.0 and JMS both default to 4


def java_string(value: Any) -> str:
    """A property value as Java's String.valueOf writes it ("true", "null", "1.5")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def body_bytes(body: Any) -> tuple[str, bytes]:
    """(`messageType`, raw body). Text bodies are UTF-8; a binary body is a bytes message;
    an AMQP value of another kind (map, list, number) is sent as its JSON text."""
    if isinstance(body, str):
        return TEXT, body.encode("utf-8")
    if isinstance(body, bytes | bytearray | memoryview):
        return BYTES, bytes(body)
    if body is None:
        return TEXT, b""
    return TEXT, orjson.dumps(body, default=str)


# Ids for messages that came without one: this process's random prefix and a counter,
# unique like a uuid4 each, at a tenth of its cost (uuid4 was a third of building a record).
_ID_PREFIX = f"ID:esm-{uuid.uuid4()}-"
_ID_COUNTER = itertools.count(1)


def _new_message_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER)}"


def attempt_key(payload: Mapping[str, Any]) -> str:
    """What esm counts a message's failed deliveries by: its message ID; for a message that
    came without one (its ID made up here, new at each delivery, so a count by it would
    never grow), a digest of its queue and body."""
    message_id = str(payload["messageID"])
    if not message_id.startswith(_ID_PREFIX):
        return message_id
    digest = hashlib.blake2b(str(payload["data"]).encode("ascii"), digest_size=16,
                             person=b"esm-amq")
    digest.update(str(payload["destination"]["physicalName"]).encode())
    return f"body:{digest.hexdigest()}"


def _ms(seconds: float | None) -> int:
    return int(round(seconds * 1000)) if seconds else 0


def message_payload(message: Any, queue: str, received_ms: int) -> dict[str, Any]:
    """The event's element for one proton `Message` (ESM-SPEC §2.6, every key present)."""
    kind, raw = body_bytes(message.body)
    timestamp = _ms(message.creation_time) or received_ms
    message_id = message.id
    return {
        "messageID": str(message_id) if message_id is not None else _new_message_id(),
        "messageType": kind,
        "timestamp": timestamp,
        "deliveryMode": 2 if message.durable else 1,
        "correlationID": "" if message.correlation_id is None else str(message.correlation_id),
        "replyTo": "null" if message.reply_to is None else str(message.reply_to),
        "destination": {"physicalName": queue},
        "redelivered": (message.delivery_count or 0) > 0,
        "type": message.subject or "",
        "expiration": _ms(message.expiry_time),
        "priority": DEFAULT_PRIORITY if message.priority is None else int(message.priority),
        "data": base64.b64encode(raw).decode("ascii"),
        "brokerInTime": min(timestamp, received_ms),
        "brokerOutTime": received_ms,
        "properties": {str(k): java_string(v)
                       for k, v in (message.properties or {}).items()},
    }


def to_record(message: Any, queue: str, lane: str, received_ms: int, handle: Any,
              attempt: Callable[[str, int], int] | None = None) -> Record:
    """One delivery as an esm record; `handle` is the source's settle handle. Its
    delivery_count is the broker's, or `attempt(message ID, broker's count)` when given
    (passed in rather than replaced after: `dataclasses.replace` on every record cost
    the reader ~4% of its time), counted by `attempt_key`."""
    payload = message_payload(message, queue, received_ms)
    encoded = orjson.dumps(payload)
    message_id = payload["messageID"]
    count = (message.delivery_count or 0) + 1
    return Record(lane=lane, position=message_id, item_id=message_id,
                  payload=payload, size_bytes=len(encoded),
                  timestamp=payload["timestamp"] / 1000, filter_view=MqFilterView(payload),
                  delivery_count=count if attempt is None else attempt(attempt_key(payload),
                                                                       count),
                  handle=handle, encoded=encoded)


class MqFilterView(Mapping[str, Any]):
    """What the filter matches (ESM-SPEC §2.6, §3.4): the message with `data` decoded —
    UTF-8, then JSON when valid, else the plain string; not UTF-8 → absent (filters then see
    the metadata only). Decoded on first use, so a mapping without filters never pays."""

    __slots__ = ("_payload", "_data")

    _UNSET = object()

    def __init__(self, payload: Mapping[str, Any]) -> None:
        self._payload = payload
        self._data: Any = self._UNSET

    def _decoded(self) -> Any:
        if self._data is self._UNSET:
            self._data = decode_data(self._payload["data"])
        return self._data

    def __getitem__(self, key: str) -> Any:
        if key != "data":
            return self._payload[key]
        value = self._decoded()
        if value is None:
            raise KeyError(key)
        return value

    def __iter__(self) -> Iterator[str]:
        absent = self._decoded() is None
        return (k for k in self._payload if not (absent and k == "data"))

    def __len__(self) -> int:
        return sum(1 for _ in self)


def decode_data(data: str) -> Any:
    """base64 → JSON value, or the plain string; None when the bytes are not UTF-8."""
    raw = base64.b64decode(data)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def envelope(event_source_arn: str) -> tuple[bytes, bytes]:
    """The encoded event around its messages: (head, tail)."""
    head = orjson.dumps({"eventSource": EVENT_SOURCE, "eventSourceArn": event_source_arn})
    return head[:-1] + b',"messages":[', b"]}"


def build_event(records: Sequence[Record], event_source_arn: str) -> dict[str, Any]:
    return {"eventSource": EVENT_SOURCE, "eventSourceArn": event_source_arn,
            "messages": [r.payload for r in records]}


def encode_event(records: Sequence[Record], event_source_arn: str) -> bytes:
    """Byte for byte `orjson.dumps(build_event(...))`, joined from the records' encodings."""
    head, tail = envelope(event_source_arn)
    return head + b",".join(r.encoded or orjson.dumps(r.payload) for r in records) + tail


def batch_info(records: Sequence[Record], event_source_arn: str, queue: str) -> dict[str, Any]:
    """esm's `ActiveMQBatchInfo` for notices (AWS writes no MQ notices; the shape follows
    KafkaBatchInfo, ESM-SPEC §4.5)."""
    return {
        "batchSize": len(records),
        "eventSourceArn": event_source_arn,
        "queue": queue,
        "payloadSize": sum(r.size_bytes for r in records),
        "firstMessageId": records[0].item_id,
        "lastMessageId": records[-1].item_id,
        "firstMessageTimestamp": int(records[0].timestamp * 1000),
        "lastMessageTimestamp": int(records[-1].timestamp * 1000),
        "maxDeliveryCount": max(r.delivery_count for r in records),
    }
