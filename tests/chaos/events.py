"""Reading any source's event: the record ids the producer put in, the item identifiers a
handler names in `batchItemFailures`, and the delivery count when the source tells one.

Every produced record carries a JSON document `{"id", "lane", "seq", "poison"}`: in the
Kafka value and Kinesis data (base64), the SQS and Redis `body`, the DynamoDB item
(`NewImage`), the RabbitMQ and ActiveMQ message `data` (base64; `aws:rmq` groups messages
by queue, `aws:mq` lists them). The damage handler and the ledger's reading of
dead-letter payloads both use `event_items`, so what counts as "this record" is the same on
both sides.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Item:
    """One record of an event: its produced document, how to name it in
    batchItemFailures, and the source's delivery count (None: the source has none)."""

    doc: dict[str, Any]
    identifier: Any
    delivery: int | None

    @property
    def id(self) -> str:
        return str(self.doc.get("id"))


def event_items(event: dict[str, Any]) -> list[Item]:
    """The records of an event of any source, in event order."""
    if isinstance(event.get("records"), dict):  # SelfManagedKafka
        return [Item(_json(base64.b64decode(r["value"])),
                     {"partition": tp, "offset": r["offset"]}, None)
                for tp, records in event["records"].items() for r in records]
    if isinstance(event.get("rmqMessagesByQueue"), dict):  # RabbitMQ: messageId names one
        return [Item(_json(base64.b64decode(m["data"])), m["basicProperties"]["messageId"],
                     None)
                for messages in event["rmqMessagesByQueue"].values() for m in messages]
    if isinstance(event.get("messages"), list):  # ActiveMQ
        return [Item(_json(base64.b64decode(m["data"])), m["messageID"], None)
                for m in event["messages"]]
    return [_record_item(r) for r in event.get("Records") or ()]


def _record_item(rec: dict[str, Any]) -> Item:
    if "kinesis" in rec:
        kinesis = rec["kinesis"]
        return Item(_json(base64.b64decode(kinesis["data"])), kinesis["sequenceNumber"], None)
    if "dynamodb" in rec:
        image = rec["dynamodb"].get("NewImage") or rec["dynamodb"].get("Keys") or {}
        return Item(_json(image.get("doc", {}).get("S", "{}").encode()),
                    rec["dynamodb"]["SequenceNumber"], None)
    attributes = rec.get("attributes") or {}
    count = attributes.get("deliveryCount") or attributes.get("ApproximateReceiveCount")
    return Item(_json(rec.get("body", "{}").encode()), rec["messageId"],
                int(count) if count else None)


def _json(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
