"""Kafka topic on-failure destination (ESM-SPEC §4.4, §4.5 Kafka-topic form, §8 item 59).

One message per failed record, keyed with the record's original key (null key → the
producer spreads them), whose value is the notice with `KafkaBatchInfo` narrowed to that
record (`batchSize: 1`, `recordInfo: {offset, timestamp}`) and `payload` = a Kafka event
holding only that record. `send` returns only after the broker acknowledged every message
(acks=all); anything else raises DestinationError, so the core never acks past it.
The destination refuses to write to a topic the failed record came from.

`iter_notices` reads the topic back for `esm redrive` (esm.redrive.sources) as the consumer
group `esm-redrive-<mapping>`: from the group's committed offsets (the beginning the first
time) up to the end offsets taken at the start, so notices written meanwhile wait for the
next run. A partition's offset is committed up to the first notice not yet acknowledged, so
a notice that fails again is read again by the next run (the progress file skips the ones
after it that were replayed). Notice ids: `kafka:<requestId>:<topic>-<partition>@<offset>`
of the failed record, as one notice holds one record.
"""

from __future__ import annotations

import base64
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition  # type: ignore[import-untyped]
from kafka import errors as kafka_errors
from kafka.structs import OffsetAndMetadata  # type: ignore[import-untyped]

from connectors.kafka.event import envelope
from connectors.kafka.security import KafkaSecuritySettings, client_options
from esm.errors import DestinationError
from esm.records import Record

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class KafkaDestinationSettings(KafkaSecuritySettings):
    bootstrap_servers: tuple[str, ...] = field(metadata={"doc": "host:port of the brokers"})
    topic: str = field(metadata={"doc": "topic for failed records; never a source topic"})
    client_id: str = field(default="esm-dead-letters", metadata={"doc": "Kafka client.id"})
    timeout_seconds: float = field(default=30.0, metadata={
        "min": 1, "max": 300, "doc": "how long one send waits for the broker's acks"})


class KafkaDestination:
    """Writes failed records to a Kafka topic. Thread-safe (KafkaProducer is)."""

    Settings = KafkaDestinationSettings

    def __init__(self, settings: KafkaDestinationSettings, context: Any, *,
                 producer_factory: Any = KafkaProducer,
                 environ: Mapping[str, str] | None = None) -> None:
        self._settings = settings
        self._factory = producer_factory
        self._security = client_options(settings, os.environ if environ is None else environ,
                                        owner="kafka destination")
        self._producer: Any = None
        self._lock = threading.Lock()

    def _client(self) -> Any:
        with self._lock:
            if self._producer is None:
                try:
                    self._producer = self._factory(
                        bootstrap_servers=list(self._settings.bootstrap_servers),
                        client_id=self._settings.client_id, acks="all", retries=5,
                        max_request_size=8 * 1024 * 1024, **self._security)
                except kafka_errors.KafkaError as exc:
                    raise DestinationError(f"kafka destination unreachable: {exc}") from exc
            return self._producer

    def send(self, notice: Mapping[str, Any], records: Sequence[Record]) -> None:
        for record in records:
            if record.payload.get("topic") == self._settings.topic:
                raise DestinationError(f"kafka destination topic {self._settings.topic!r} is "
                                       "the failed record's own topic; refusing to write")
        producer = self._client()
        try:
            futures = [producer.send(self._settings.topic, key=record_key(record),
                                     value=orjson.dumps(record_notice(notice, record)))
                       for record in records]
            for future in futures:
                future.get(timeout=self._settings.timeout_seconds)
        except kafka_errors.KafkaError as exc:
            raise DestinationError(f"kafka destination {self._settings.topic!r}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            producer.close(timeout=self._settings.timeout_seconds)


def record_key(record: Record) -> bytes | None:
    """The failed record's original Kafka key (ESM-SPEC §4.4), None when it had none."""
    key = record.payload.get("key")
    return base64.b64decode(key) if isinstance(key, str) else None


def record_notice(notice: Mapping[str, Any], record: Record) -> dict[str, Any]:
    """The notice for one record, Kafka-topic form (ESM-SPEC §4.5)."""
    info = notice.get("KafkaBatchInfo") or {}
    bootstrap = info.get("bootstrapServers")
    single = dict(notice)
    single["KafkaBatchInfo"] = {
        "batchSize": 1, "eventSourceArn": info.get("eventSourceArn"),
        "bootstrapServers": bootstrap, "payloadSize": record.size_bytes,
        "recordInfo": {"offset": str(record.payload.get("offset")),
                       "timestamp": record.payload.get("timestamp")},
    }
    single["payload"] = {**envelope(info.get("eventSourceArn")), "bootstrapServers": bootstrap,
                         "records": {record.lane: [record.payload]}}
    return single


Notice = tuple[str, dict[str, Any], Callable[[], None]]


def iter_notices(settings: KafkaDestinationSettings, environ: Mapping[str, str], *,
                 mapping: str, consumer_factory: Any = KafkaConsumer,
                 idle_seconds: float = 30.0) -> Iterator[Notice]:
    """`esm redrive`'s reader: (id, notice, ack) per message; see the module docstring.
    Gives up with a warning when no message arrives for `idle_seconds` before the end."""
    consumer = _redrive_consumer(settings, environ, mapping, consumer_factory)
    try:
        partitions = consumer.partitions_for_topic(settings.topic) or set()
        tps = [TopicPartition(settings.topic, p) for p in sorted(partitions)]
        if not tps:
            return
        consumer.assign(tps)
        ends = consumer.end_offsets(tps)
        prefix = _CommitPrefix(consumer)
        left = {tp for tp in tps if consumer.position(tp) < ends[tp]}
        deadline = time.monotonic() + idle_seconds
        while left and time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=500)
            for tp, messages in batch.items():
                for message in messages:
                    if message.offset < ends[tp]:
                        deadline = time.monotonic() + idle_seconds
                        yield _entry(message, prefix)
            left = {tp for tp in left if consumer.position(tp) < ends[tp]}
        if left:
            log.warning("kafka redrive of %s stopped before the end of partitions %s: no "
                        "message for %.0f s", settings.topic, sorted(tp.partition for tp in left),
                        idle_seconds)
    except kafka_errors.KafkaError as exc:
        raise DestinationError(f"kafka destination {settings.topic!r}: redrive read failed: "
                               f"{exc}") from exc
    finally:
        consumer.close(autocommit=False)


def _redrive_consumer(settings: KafkaDestinationSettings, environ: Mapping[str, str],
                      mapping: str, factory: Any) -> Any:
    try:
        return factory(bootstrap_servers=list(settings.bootstrap_servers),
                       group_id=f"esm-redrive-{mapping}",
                       client_id=f"{settings.client_id}-redrive", enable_auto_commit=False,
                       auto_offset_reset="earliest",
                       **client_options(settings, environ, owner="kafka destination"))
    except kafka_errors.KafkaError as exc:
        raise DestinationError(f"kafka destination unreachable: {exc}") from exc


class _CommitPrefix:
    """Per partition, commits past the notices acknowledged so far without a gap: a notice
    that failed again keeps the committed offset at itself, so the next run reads it."""

    def __init__(self, consumer: Any) -> None:
        self.consumer = consumer
        self.open: dict[Any, dict[int, bool]] = {}  # tp → offset → acked, in read order

    def track(self, tp: Any, offset: int) -> None:
        self.open.setdefault(tp, {})[offset] = False

    def ack(self, tp: Any, offset: int) -> None:
        pending = self.open[tp]
        pending[offset] = True
        finished: list[int] = []
        for read, acked in pending.items():  # stops at the first one still open
            if not acked:
                break
            finished.append(read)
        if not finished:
            return
        for read in finished:
            del pending[read]
        upto = finished[-1]
        try:
            self.consumer.commit({tp: OffsetAndMetadata(upto + 1, "", -1)})
        except kafka_errors.KafkaError as exc:
            raise DestinationError(f"kafka redrive commit of {tp.topic}-{tp.partition} at "
                                   f"{upto + 1} failed: {exc}") from exc


def _entry(message: Any, prefix: _CommitPrefix) -> Notice:
    tp = TopicPartition(message.topic, message.partition)
    try:
        notice = orjson.loads(message.value) if message.value is not None else None
    except orjson.JSONDecodeError:
        notice = None
    notice = notice if isinstance(notice, dict) else {}
    prefix.track(tp, message.offset)
    return notice_id(notice, message), notice, lambda: prefix.ack(tp, message.offset)


def notice_id(notice: Mapping[str, Any], message: Any) -> str:
    """`kafka:<requestId>:<failed record's topic-partition@offset>`; the dead-letter
    message's own coordinates when the notice does not say."""
    request_id = (notice.get("requestContext") or {}).get("requestId")
    payload = notice.get("payload")
    groups = payload.get("records") if isinstance(payload, dict) else None
    for records in (groups or {}).values():
        for record in records or ():
            if request_id and isinstance(record, dict):
                return (f"kafka:{request_id}:{record.get('topic')}-{record.get('partition')}"
                        f"@{record.get('offset')}")
    return f"kafka-message:{message.topic}-{message.partition}@{message.offset}"
