"""SQS messages → esm records and events (pure: no I/O).

Event shape: ESM-SPEC §2.1 and checklist §8 items 14–15. Filter view: ESM-SPEC §3.4.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from esm.clock import iso_utc
from esm.records import Record

log = logging.getLogger(__name__)

EVENT_SOURCE = "aws:sqs"
# `{"Records":[]}`: the envelope around the records (ESM-SPEC §1.4, 6 MB includes it).
EVENT_OVERHEAD_BYTES = len(b'{"Records":[]}')


@dataclass(frozen=True, slots=True)
class QueueInfo:
    """What every record of one queue shares."""

    arn: str
    region: str
    fifo: bool


@dataclass(frozen=True, slots=True)
class Received:
    """One received message, converted once; the lane is chosen when it is handed out."""

    payload: dict[str, Any]
    filter_view: dict[str, Any]
    size_bytes: int
    timestamp: float
    delivery_count: int
    group: str | None
    position: str

    @property
    def message_id(self) -> str:
        return str(self.payload["messageId"])

    @property
    def receipt_handle(self) -> str:
        return str(self.payload["receiptHandle"])

    def to_record(self, lane: str) -> Record:
        return Record(lane=lane, position=self.position, item_id=self.message_id,
                      payload=self.payload, size_bytes=self.size_bytes,
                      timestamp=self.timestamp, filter_view=self.filter_view,
                      delivery_count=self.delivery_count, handle=self.receipt_handle)


def convert(message: Mapping[str, Any], queue: QueueInfo) -> Received:
    """Convert one ReceiveMessage entry (boto3 shape) to its AWS event record.

    Attribute values are strings (epoch ms), message attributes lower-camel with binary
    values base64-encoded, and `md5OfMessageAttributes` is null when there are none
    (ESM-SPEC §2.1).
    """
    attributes = {str(k): str(v) for k, v in message.get("Attributes", {}).items()}
    body = message.get("Body", "")
    payload: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": body,
        "attributes": attributes,
        "messageAttributes": message_attributes(message.get("MessageAttributes") or {}),
        "md5OfMessageAttributes": message.get("MD5OfMessageAttributes"),
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": EVENT_SOURCE,
        "eventSourceARN": queue.arn,
        "awsRegion": queue.region,
    }
    sent_ms = attributes.get("SentTimestamp")
    group = attributes.get("MessageGroupId") if queue.fifo else None
    try:
        size_bytes = len(orjson.dumps(payload))
    except orjson.JSONEncodeError:  # a lone UTF-16 surrogate: no JSON event can carry it
        payload = _without_lone_surrogates(payload)
        size_bytes = len(orjson.dumps(payload))
        log.warning("sqs message %s holds lone UTF-16 surrogates; each is sent to the "
                    "target as U+FFFD", payload["messageId"])
    return Received(
        payload=payload,
        filter_view=filter_view(payload),
        size_bytes=size_bytes,
        timestamp=int(sent_ms) / 1000.0 if sent_ms else 0.0,
        delivery_count=int(attributes.get("ApproximateReceiveCount", "1")),
        group=group,
        position=attributes.get("SequenceNumber") or payload["messageId"],
    )


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _without_lone_surrogates(value: Any) -> Any:
    """`value` with every lone surrogate in its strings replaced by U+FFFD. Python strings
    decoded from JSON escapes can hold them; UTF-8, and so the event, cannot — without this
    the message would fail conversion at every delivery and block its queue."""
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_without_lone_surrogates(k): _without_lone_surrogates(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_without_lone_surrogates(v) for v in value]
    return value


def message_attributes(raw: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """boto3's `MessageAttributes` in the event's lower-camel form (ESM-SPEC §2.1)."""
    out: dict[str, dict[str, Any]] = {}
    for name, value in raw.items():
        entry: dict[str, Any] = {}
        if "StringValue" in value:
            entry["stringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            entry["binaryValue"] = _b64(value["BinaryValue"])
        entry["stringListValues"] = list(value.get("StringListValues", []))
        entry["binaryListValues"] = [_b64(v) for v in value.get("BinaryListValues", [])]
        entry["dataType"] = value.get("DataType", "String")
        out[name] = entry
    return out


def _b64(value: bytes | str) -> str:
    raw = value.encode() if isinstance(value, str) else value
    return base64.b64encode(raw).decode("ascii")


def filter_view(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The document the filter sees (ESM-SPEC §3.4): the record with `body` parsed when it
    is a JSON object or array, else kept as the plain string. A JSON pattern against a
    plain body (or the reverse) then fails to match, so the message is dropped, as AWS does.

    JSON scalars (`"42"`, `"true"`) stay strings, so `{"body": ["42"]}` matches the body
    `42` as text. Poller-added fields (eventSource, eventSourceARN, awsRegion) are left out:
    they cannot be filtered on (ESM-SPEC §3.1).
    """
    body = payload["body"]
    parsed: Any = body
    stripped = body.lstrip()[:1]
    if stripped in ("{", "["):
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            parsed = body
    return {
        "messageId": payload["messageId"],
        "receiptHandle": payload["receiptHandle"],
        "body": parsed,
        "attributes": payload["attributes"],
        "messageAttributes": payload["messageAttributes"],
        "md5OfMessageAttributes": payload["md5OfMessageAttributes"],
        "md5OfBody": payload["md5OfBody"],
    }


def build_event(records: Sequence[Record]) -> dict[str, Any]:
    """`{"Records": [...]}` in batch order (ESM-SPEC §2.1)."""
    return {"Records": [r.payload for r in records]}


def normalise_item_identifier(value: object) -> str | None:
    """A batchItemFailures itemIdentifier is a messageId: a non-empty string. Anything else
    is malformed, which fails the whole batch (ESM-SPEC §4.2)."""
    if isinstance(value, str) and value.strip():
        return value
    return None


def batch_info(records: Sequence[Record], queue: QueueInfo, queue_url: str) -> dict[str, Any]:
    """esm's `SQSBatchInfo` for notices (AWS has no SQS notice form; this follows the shape
    of KinesisBatchInfo, ESM-SPEC §4.5): queue, batch size, first/last message, sent times
    and the highest receive count."""
    first, last = records[0], records[-1]
    return {
        "queueArn": queue.arn,
        "queueUrl": queue_url,
        "batchSize": len(records),
        "firstMessageId": first.item_id,
        "lastMessageId": last.item_id,
        "messageGroupIds": sorted({r.lane for r in records}) if queue.fifo else [],
        "approximateSentOfFirstMessage": iso_utc(first.timestamp),
        "approximateSentOfLastMessage": iso_utc(last.timestamp),
        "maxReceiveCount": max(r.delivery_count for r in records),
        "payloadSize": sum(r.size_bytes for r in records),
    }
