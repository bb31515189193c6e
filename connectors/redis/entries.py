"""Turn Redis stream entries into esm Records (pure; no client).

Event record shape (esm's own, close to SQS; DESIGN §3):
    {"eventSource": "redis:streams", "eventSourceARN": "redis://cache:6379/0/orders",
     "stream": "orders", "messageId": "1700000000000-0",
     "fields": {"type": "order", "body": "{\"amount\": 12}"}, "body": "{\"amount\": 12}",
     "attributes": {"deliveryCount": "1", "timestamp": "1700000000000", "consumerGroup": "esm"}}

- `body` is the value of the configured body field, and is left out when the entry has no
  such field.
- Field values that are not UTF-8 are base64-encoded and named in
  `attributes.binaryFields`. A field *name* that is not UTF-8 is decoded with backslash
  escapes (names are JSON keys and must be text).
- Redis allows one name twice in an entry; the last value wins, as in a JSON object.
- Filtering (ESM-SPEC §3.4, SQS row): the filter sees `body` parsed when it is valid JSON,
  else the plain string, so a JSON pattern never matches a plain body and vice versa.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from esm.clock import iso_utc
from esm.records import Record

EVENT_SOURCE = "redis:streams"
# An entry's fields as redis-py parses them (XAUTOCLAIM), or as they come off the wire
# (client.stream_reply_pairs): [name, value, name, value, ...].
RawFields = Mapping[bytes, bytes] | list[bytes]
# The characters a JSON text can start with (RFC 8259: optional whitespace, then a value).
_JSON_STARTS = frozenset(' \t\n\r{["-0123456789tfn')


def event_source_arn(url: str, stream: str) -> str:
    """`redis://host:port/db/<stream>` for `url`, without credentials (DESIGN §3)."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    if parts.scheme == "unix":
        db = query.get("db", ["0"])[0]
        return f"unix://{parts.path}/{db}/{stream}"
    host = parts.hostname or "localhost"
    if ":" in host:
        host = f"[{host}]"
    db = parts.path.strip("/") or query.get("db", ["0"])[0]
    return f"{parts.scheme}://{host}:{parts.port or 6379}/{db}/{stream}"


def entry_timestamp_ms(entry_id: str) -> int:
    """The millisecond part of an entry id: when Redis appended the entry (auto ids)."""
    millis, _, _ = entry_id.partition("-")
    try:
        return int(millis)
    except ValueError:
        return 0


class EntryDecoder:
    """Builds Records for one source: knows the group, the body field and the ARNs."""

    __slots__ = ("_arns", "_group", "_body_field", "_key_field", "_views")

    def __init__(self, url: str, streams: Sequence[str], group: str, body_field: str,
                 ordering_key_field: str | None = None, filter_views: bool = True) -> None:
        self._arns = {stream: event_source_arn(url, stream) for stream in streams}
        self._group = group
        self._body_field = body_field
        # Its value is the Record's ordering_key (parallelization_factor > 1); entries
        # without it share the stream's own slot.
        self._key_field = ordering_key_field
        # False when the mapping has no filter: no body is parsed for a view never matched.
        self._views = filter_views

    def arn(self, stream: str) -> str:
        return self._arns[stream]

    def record(self, stream: str, entry_id: str, raw_fields: RawFields,
               delivery_count: int, handle: object = None,
               attempt: int | None = None) -> Record:
        """One Record; `delivery_count` is Redis's delivery counter (1 on first delivery,
        XREADGROUP '>'), shown as the event's `deliveryCount`; `attempt` is what the core
        counts against max_deliveries (`Record.delivery_count`; default: the same). `handle`
        marks which source instance read it, for its ack/release bookkeeping. `raw_fields`
        is the client's parsed dict or the wire's flat [name, value, ...] list."""
        try:  # the usual case: every name and value is UTF-8
            fields = _text_fields(raw_fields)
            binary: list[str] = []
        except UnicodeDecodeError:
            fields, binary = decode_fields(as_mapping(raw_fields))
        return self._build(stream, entry_id, fields, binary, delivery_count, handle,
                           delivery_count if attempt is None else attempt)

    def new_entries(self, stream: str, entries: Sequence[Any], handle: object) -> list[Record]:
        """Records for one stream's XREADGROUP '>' reply ([id, fields] pairs; fields None
        for an entry deleted while pending, skipped), in order. The reply's ids, names and
        values may be bytes, or str decoded by the connection with surrogateescape
        (RedisPipe decode_text): then an entry that was not UTF-8 holds lone surrogates,
        which orjson refuses to encode, and goes through `record` as bytes.

        Performance: this runs once per entry read and was most of the Redis reader's CPU,
        so the common case (decoded UTF-8 fields, first delivery) is one flat loop here,
        with no call per entry beyond the builtins; anything else goes through `record`."""
        arn, group, body_field = self._arns[stream], self._group, self._body_field
        key_field = self._key_field
        dumps, loads = orjson.dumps, orjson.loads
        json_starts = _JSON_STARTS if self._views else frozenset()
        out: list[Record] = []
        append = out.append
        for raw_id, raw in entries:
            if raw is None:
                continue
            entry_id = raw_id if type(raw_id) is str else text(raw_id)
            if type(raw) is not list or len(raw) & 1:
                append(self.record(stream, entry_id, as_bytes(raw), 1, handle))
                continue
            if not raw or type(raw[0]) is not str:  # bytes from a client that does not decode
                append(self.record(stream, entry_id, raw, 1, handle))
                continue
            names_values = iter(raw)
            fields = dict(zip(names_values, names_values, strict=False))  # even: checked
            millis_text = entry_id.partition("-")[0]
            if not millis_text.isdigit():
                millis_text = "0"
            attributes = {"deliveryCount": "1", "timestamp": millis_text,
                          "consumerGroup": group}
            body = fields.get(body_field)
            view = None
            if body is None:
                payload = {"eventSource": EVENT_SOURCE, "eventSourceARN": arn,
                           "stream": stream, "messageId": entry_id, "fields": fields,
                           "attributes": attributes}
            else:
                payload = {"eventSource": EVENT_SOURCE, "eventSourceARN": arn,
                           "stream": stream, "messageId": entry_id, "fields": fields,
                           "body": body, "attributes": attributes}
            try:
                encoded = dumps(payload)
            except orjson.JSONEncodeError:  # surrogates: bytes that were not UTF-8
                append(self.record(stream, entry_id, as_bytes(raw), 1, handle))
                continue
            if body and body[0] in json_starts:  # else it cannot be JSON: skip the parser
                try:
                    view = {**payload, "body": loads(body)}
                except orjson.JSONDecodeError:
                    pass
            key = fields.get(key_field) if key_field is not None else None
            append(Record(stream, entry_id, entry_id, payload, len(encoded),
                          int(millis_text) / 1000.0, view, 1, key, handle, encoded))
        return out

    def _build(self, stream: str, entry_id: str, fields: dict[str, str], binary: list[str],
               delivery_count: int, handle: object, attempt: int) -> Record:
        millis = entry_timestamp_ms(entry_id)
        attributes: dict[str, Any] = {
            "deliveryCount": str(delivery_count), "timestamp": str(millis),
            "consumerGroup": self._group}
        if binary:
            attributes["binaryFields"] = binary
        payload: dict[str, Any] = {
            "eventSource": EVENT_SOURCE, "eventSourceARN": self._arns[stream],
            "stream": stream, "messageId": entry_id, "fields": fields}
        body = fields.get(self._body_field)
        view = None
        if body is not None:
            payload["body"] = body
        payload["attributes"] = attributes
        if self._views and body is not None and self._body_field not in binary:
            view = _json_body_view(payload, body)
        encoded = orjson.dumps(payload)
        key = fields.get(self._key_field) if self._key_field is not None else None
        return Record(stream, entry_id, entry_id, payload, len(encoded),
                      millis / 1000.0, view, attempt, key, handle, encoded)

    def batch_info(self, records: Sequence[Record]) -> dict[str, Any]:
        """`RedisStreamBatchInfo` for a notice, shaped like KinesisBatchInfo (ESM-SPEC §4.5).
        A batch holds one lane, so the first record names the stream."""
        if not records:
            return {"batchSize": 0, "consumerGroup": self._group}
        first, last = records[0], records[-1]
        return {
            "stream": first.lane,
            "eventSourceArn": self._arns.get(first.lane, ""),
            "consumerGroup": self._group,
            "startMessageId": first.item_id,
            "endMessageId": last.item_id,
            "approximateArrivalOfFirstRecord": iso_utc(first.timestamp),
            "approximateArrivalOfLastRecord": iso_utc(last.timestamp),
            "batchSize": len(records),
            "maxDeliveryCount": max(r.delivery_count for r in records),
        }


def fresh_payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of an event record sharing no dict or list with it: its `fields`, its
    `attributes` and their `binaryFields` are the mutable parts (the rest is text)."""
    attributes = dict(payload["attributes"])
    binary = attributes.get("binaryFields")
    if binary is not None:
        attributes["binaryFields"] = list(binary)
    return {**payload, "fields": dict(payload["fields"]), "attributes": attributes}


def _text_fields(raw: RawFields) -> dict[str, str]:
    """Names and values as text; UnicodeDecodeError when one is not UTF-8. Of a name given
    twice, the last value wins."""
    if type(raw) is list:
        pairs = iter(raw)
        return {k.decode(): v.decode() for k, v in zip(pairs, pairs, strict=True)}
    return {k.decode(): v.decode() for k, v in raw.items()}  # type: ignore[union-attr]


def as_bytes(raw: Any) -> Any:
    """Entry fields decoded by the connection (surrogateescape) back to the wire's bytes."""
    if type(raw) is list:
        return [v.encode("utf-8", "surrogateescape") if type(v) is str else v for v in raw]
    if isinstance(raw, dict):
        return {(k.encode("utf-8", "surrogateescape") if type(k) is str else k):
                (v.encode("utf-8", "surrogateescape") if type(v) is str else v)
                for k, v in raw.items()}
    return raw


def as_mapping(raw: RawFields) -> Mapping[bytes, bytes]:
    """Entry fields as a mapping; of a name given twice, the last value wins."""
    if isinstance(raw, list):
        pairs = iter(raw)
        return dict(zip(pairs, pairs, strict=True))
    return raw


def decode_fields(raw: Mapping[bytes, bytes]) -> tuple[dict[str, str], list[str]]:
    """Fields as text, and the names of those whose values had to be base64-encoded."""
    try:
        return {k.decode(): v.decode() for k, v in raw.items()}, []
    except UnicodeDecodeError:
        pass  # rare: fall back to the per-field path below
    fields: dict[str, str] = {}
    binary: list[str] = []
    for key, value in raw.items():
        name = key.decode("utf-8", "backslashreplace")
        try:
            fields[name] = value.decode()
        except UnicodeDecodeError:
            fields[name] = base64.b64encode(value).decode("ascii")
            binary.append(name)
    return fields, binary


def text(value: object) -> str:
    """A reply value as str (the client returns bytes: decode_responses is off)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def _json_body_view(payload: dict[str, Any], body: str) -> dict[str, Any] | None:
    """The filter's view with `body` parsed, or None (filter on payload) when not JSON."""
    if not body or body[0] not in _JSON_STARTS:
        return None  # cannot be a JSON document: skip the parser's exception path
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return {**payload, "body": parsed}
