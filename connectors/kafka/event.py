"""Pure translation between Kafka consumer records and the AWS self-managed Kafka shapes:
the per-record payload and filter view, the event, item identifiers and `KafkaBatchInfo`.

No client here: everything is callable from lane-worker threads (esm.interfaces.Source).
"""

from __future__ import annotations

import base64
from array import array
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import orjson

from esm.clock import iso_utc
from esm.records import Record

EVENT_SOURCE = "SelfManagedKafka"
MSK_EVENT_SOURCE = "aws:kafka"
# confluent-kafka's Message.timestamp() types: 0 TIMESTAMP_NOT_AVAILABLE, 1 CREATE_TIME,
# 2 LOG_APPEND_TIME (kafka-python counted from 0).
_TIMESTAMP_TYPES = {1: "CREATE_TIME", 2: "LOG_APPEND_TIME"}
_ABSENT = object()  # value not in the filter view
_UNDECODED = object()  # not decoded yet


def lane_name(topic: str, partition: int) -> str:
    """ESM-SPEC §2.4: records are keyed `"<topic>-<partition>"`; esm uses it as the lane."""
    return f"{topic}-{partition}"


def item_id(lane: str, offset: int) -> str:
    """The Record.item_id matched against a normalised `batchItemFailures` identifier."""
    return f"{lane}@{offset}"


def signed_bytes(value: bytes | None) -> list[int]:
    """ESM-SPEC §2.4: header values are lists of signed Java bytes (-128…127)."""
    return array("b", value).tolist() if value else []


def message_of(record: Mapping[str, Any], default_topic: str
               ) -> tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]:
    """The inverse of `record_payload`: (topic, key, value, headers) of an event's record
    object, its base64 and signed-byte forms decoded (`esm redrive --to source`)."""
    key, value = record.get("key"), record.get("value")
    return (record.get("topic") or default_topic,
            None if key is None else base64.b64decode(key),
            None if value is None else base64.b64decode(value),
            [(name, bytes(b & 0xFF for b in data))
             for header in record.get("headers") or () for name, data in header.items()])


def record_payload(msg: Any) -> dict[str, Any]:
    """One record object of the event (ESM-SPEC §2.4) for a confluent-kafka Message.

    `key` is omitted when the Kafka key is null (ESM-SPEC §2.4, recommended rule); a null
    value (tombstone) is sent as `"value": null`.
    """
    return _payload(msg, msg.key(), msg.value())


def _payload(msg: Any, key: bytes | None, value: bytes | None) -> dict[str, Any]:
    stamp_type, stamp = msg.timestamp()
    payload: dict[str, Any] = {
        "topic": msg.topic(), "partition": msg.partition(), "offset": msg.offset(),
        "timestamp": stamp,
        "timestampType": _TIMESTAMP_TYPES.get(stamp_type, "NO_TIMESTAMP_TYPE"),
    }
    if key is not None:
        payload["key"] = base64.b64encode(key).decode("ascii")
    payload["value"] = None if value is None else base64.b64encode(value).decode("ascii")
    payload["headers"] = [{name: signed_bytes(data)} for name, data in msg.headers() or ()]
    return payload


class KafkaFilterView(Mapping[str, Any]):
    """The document the filter matches (ESM-SPEC §3.1, §3.4): the record object with
    `value` decoded — UTF-8, then JSON when valid, else the plain string. A value that is
    null or not UTF-8 is absent from the view (metadata-only filtering).

    Decoding is lazy: a mapping without filters never pays for it.
    """

    __slots__ = ("_payload", "_raw", "_value")

    def __init__(self, payload: Mapping[str, Any], raw_value: bytes | None) -> None:
        self._payload = payload
        self._raw = raw_value
        self._value: Any = _ABSENT if raw_value is None else _UNDECODED

    def _decoded(self) -> Any:
        if self._value is _UNDECODED:
            self._value = decode_value(self._raw or b"")
        return self._value

    def __getitem__(self, key: str) -> Any:
        if key == "value":
            value = self._decoded()
            if value is _ABSENT:
                raise KeyError(key)
            return value
        return self._payload[key]

    def __iter__(self) -> Iterator[str]:
        has_value = "value" in self
        return (k for k in self._payload if k != "value" or has_value)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __contains__(self, key: object) -> bool:
        if key == "value":
            return self._decoded() is not _ABSENT
        return key in self._payload


def decode_value(raw: bytes) -> Any:
    """JSON document when `raw` is valid JSON, else the UTF-8 string, else _ABSENT."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return _ABSENT


def to_record(msg: Any, now: float, with_view: bool = True) -> Record:
    """A Record for one confluent-kafka Message; `now` stands in for a missing broker
    timestamp. `with_view`: build the filter view (False when the mapping has no filter).

    size_bytes is the encoded record object plus a conservative share of its partition's
    key in the event (`"<topic>-<partition>":[`, `]`, two commas): counting it on every
    record over-estimates a batch by that much a record and never under-estimates. The key
    is measured encoded: a topic name with non-ASCII or control characters is longer in
    JSON than in characters.
    Measuring by encoding is deliberate: orjson encodes a record object in ~0.2 µs, less
    than computing its length by arithmetic in Python (base64 and escaping lengths) costs.
    """
    value = msg.value()
    payload = _payload(msg, msg.key(), value)
    lane = lane_name(payload["topic"], payload["partition"])
    offset = payload["offset"]
    size = len(orjson.dumps(payload)) + len(orjson.dumps(lane)) + 5
    stamp = payload["timestamp"]
    timestamp = stamp / 1000.0 if stamp is not None and stamp >= 0 else now
    return Record(
        lane=lane, position=str(offset), item_id=item_id(lane, offset),
        payload=payload, size_bytes=size, timestamp=timestamp,
        filter_view=KafkaFilterView(payload, value) if with_view else None,
        ordering_key=payload.get("key"), handle=msg.leader_epoch(),
    )


def parse_item_identifier(value: object) -> str | None:
    """ESM-SPEC §4.4: `{"partition": "<topic>-<n>", "offset": <int>}` → item id, or None
    when malformed (not an object, partition not a non-empty string, offset not an int;
    booleans are not offsets)."""
    if not isinstance(value, Mapping):
        return None
    partition = value.get("partition")
    offset = value.get("offset")
    if not isinstance(partition, str) or not partition:
        return None
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        return None
    return item_id(partition, offset)


class KafkaEvents:
    """Builds events and batch info for one mapping's bootstrap servers: self-managed
    Kafka's shape, or Amazon MSK's when a cluster ARN is given (ESM-SPEC §2.7)."""

    def __init__(self, bootstrap_servers: Sequence[str], cluster_arn: str | None = None) -> None:
        self.bootstrap_servers = ",".join(bootstrap_servers)
        self.cluster_arn = cluster_arn
        self._envelope = envelope(cluster_arn)

    def build_event(self, records: Sequence[Record]) -> dict[str, Any]:
        """ESM-SPEC §2.4: records grouped by `"<topic>-<partition>"`, offset order in each."""
        grouped: dict[str, list[Record]] = {}
        for record in records:
            grouped.setdefault(record.lane, []).append(record)
        by_lane = {
            lane: [r.payload for r in sorted(rs, key=lambda r: r.payload["offset"])]
            for lane, rs in grouped.items()
        }
        return {**self._envelope, "bootstrapServers": self.bootstrap_servers,
                "records": by_lane}

    def fresh_event(self, records: Sequence[Record]) -> dict[str, Any]:
        """`build_event` sharing no dict or list with the records (esm.interfaces
        .FreshEvents): a record object's values are immutable but for its headers."""
        event = self.build_event(records)
        event["records"] = {lane: [{**p, "headers": [{n: list(v) for n, v in h.items()}
                                                     for h in p["headers"]]}
                                   for p in payloads]
                            for lane, payloads in event["records"].items()}
        return event

    def event_overhead_bytes(self) -> int:
        """The encoded envelope with no records (ESM-SPEC §1.4: metadata counts to 6 MB)."""
        return len(orjson.dumps(self.build_event(())))

    def batch_info(self, records: Sequence[Record]) -> dict[str, Any]:
        """ESM-SPEC §4.5 `KafkaBatchInfo` (SQS/SNS/S3 form). `eventSourceArn` is the MSK
        cluster ARN, null for self-managed Kafka; offsets are strings, timestamps ISO-8601."""
        info: dict[str, dict[str, Any]] = {}
        for record in sorted(records, key=lambda r: (r.lane, r.payload["offset"])):
            entry = info.get(record.lane)
            offset, stamp = str(record.payload["offset"]), iso_utc(record.timestamp)
            if entry is None:
                info[record.lane] = {"firstRecordOffset": offset, "lastRecordOffset": offset,
                                     "firstRecordTimestamp": stamp, "lastRecordTimestamp": stamp}
            else:
                entry["lastRecordOffset"], entry["lastRecordTimestamp"] = offset, stamp
        return {"batchSize": len(records), "eventSourceArn": self.cluster_arn,
                "bootstrapServers": self.bootstrap_servers,
                "payloadSize": sum(r.size_bytes for r in records), "recordsInfo": info}


def envelope(cluster_arn: str | None) -> dict[str, str]:
    """The event's source keys: MSK (`aws:kafka` and the cluster ARN) or self-managed."""
    if cluster_arn:
        return {"eventSource": MSK_EVENT_SOURCE, "eventSourceArn": cluster_arn}
    return {"eventSource": EVENT_SOURCE}

