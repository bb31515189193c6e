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
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from connectors.kafka.bootstrap_errors import ConnectionErrors
from connectors.kafka.clients import base_config, producer_config, send_all
from connectors.kafka.commits import is_retriable
from connectors.kafka.event import envelope
from connectors.kafka.security import KafkaSecuritySettings, client_config
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
    """Writes failed records to a Kafka topic. Thread-safe (librdkafka's producer is)."""

    Settings = KafkaDestinationSettings

    def __init__(self, settings: KafkaDestinationSettings, context: Any, *,
                 producer_factory: Any = Producer,
                 environ: Mapping[str, str] | None = None) -> None:
        self._settings = settings
        self._factory = producer_factory
        self._errors = ConnectionErrors()
        self._config = producer_config(
            base_config(settings.bootstrap_servers, settings.client_id,
                        client_config(settings, os.environ if environ is None else environ,
                                      owner="kafka destination"), self._errors),
            timeout_seconds=settings.timeout_seconds)
        self._producer: Any = None
        self._lock = threading.Lock()

    def _client(self) -> Any:
        """The producer, made on first use once the cluster answered (so a wrong address
        or password is reported as such, not as a send timeout)."""
        with self._lock:
            if self._producer is None:
                producer = self._factory(self._config)
                self._errors.check(producer, self._settings.timeout_seconds,
                                   f"destination {self._settings.topic!r}",
                                   error=DestinationError)
                self._producer = producer
            return self._producer

    def send(self, notice: Mapping[str, Any], records: Sequence[Record]) -> None:
        for record in records:
            if record.payload.get("topic") == self._settings.topic:
                raise DestinationError(f"kafka destination topic {self._settings.topic!r} is "
                                       "the failed record's own topic; refusing to write")
        producer = self._client()
        try:
            send_all(producer, [(self._settings.topic, record_key(record),
                                 orjson.dumps(record_notice(notice, record)), ())
                                for record in records],
                     self._settings.timeout_seconds, self._errors)
        except KafkaException as exc:
            raise DestinationError(f"kafka destination {self._settings.topic!r}: "
                                   f"{exc.args[0] if exc.args else exc}") from exc

    def close(self) -> None:
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            producer.flush(self._settings.timeout_seconds)


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
                 mapping: str, consumer_factory: Any = Consumer,
                 idle_seconds: float = 30.0) -> Iterator[Notice]:
    """`esm redrive`'s reader: (id, notice, ack) per message; see the module docstring.
    Gives up with a warning when no message arrives for `idle_seconds` before the end."""
    errors = ConnectionErrors()
    consumer = consumer_factory(_redrive_config(settings, environ, mapping, errors))
    where = f"destination {settings.topic!r}: redrive read failed"
    try:
        errors.check(consumer, settings.timeout_seconds, where, error=DestinationError)
        yield from _read_to_end(consumer, settings, idle_seconds)
    except KafkaException as exc:
        raise DestinationError(f"kafka {where}: {errors.explain(exc.args[0])}") from exc
    finally:
        consumer.close()


def _read_to_end(consumer: Any, settings: KafkaDestinationSettings,
                 idle_seconds: float) -> Iterator[Notice]:
    """Every message up to the end offsets taken now, from the group's committed offsets."""
    topic = settings.topic
    meta = consumer.list_topics(topic, timeout=settings.timeout_seconds).topics.get(topic)
    partitions = sorted(meta.partitions) if meta is not None and meta.error is None else []
    tps = [TopicPartition(topic, p) for p in partitions]
    if not tps:
        return
    ends = {tp.partition: consumer.get_watermark_offsets(
        tp, timeout=settings.timeout_seconds)[1] for tp in tps}
    starts = {tp.partition: tp.offset for tp in consumer.committed(
        tps, timeout=settings.timeout_seconds)}
    consumer.assign(tps)  # OFFSET_STORED: the group's offsets, else the earliest
    prefix = _CommitPrefix(consumer)
    left = {p for p in partitions if max(starts[p], 0) < ends[p]}
    deadline = time.monotonic() + idle_seconds
    while left and time.monotonic() < deadline:
        for message in consumer.consume(num_messages=500, timeout=0.5):
            if message.error() is not None:
                raise KafkaException(message.error())
            partition, offset = message.partition(), message.offset()
            if offset < ends[partition]:
                deadline = time.monotonic() + idle_seconds
                yield _entry(message, prefix)
        # The consumed position, not the last offset seen: transaction markers and
        # compacted gaps leave offsets no message carries.
        left = {tp.partition for tp in consumer.position(tps)
                if tp.partition in left and tp.offset < ends[tp.partition]}
    if left:
        log.warning("kafka redrive of %s stopped before the end of partitions %s: no "
                    "message for %.0f s", topic, sorted(left), idle_seconds)


def _redrive_config(settings: KafkaDestinationSettings, environ: Mapping[str, str],
                    mapping: str, errors: ConnectionErrors) -> dict[str, Any]:
    base = base_config(settings.bootstrap_servers, f"{settings.client_id}-redrive",
                       client_config(settings, environ, owner="kafka destination"), errors)
    return {**base, "group.id": f"esm-redrive-{mapping}", "enable.auto.commit": False,
            "enable.auto.offset.store": False, "auto.offset.reset": "earliest"}


_COMMIT_ATTEMPTS = 4


class _CommitPrefix:
    """Per partition, commits past the notices acknowledged so far without a gap: a notice
    that failed again keeps the committed offset at itself, so the next run reads it."""

    def __init__(self, consumer: Any) -> None:
        self.consumer = consumer
        self.open: dict[tuple[str, int], dict[int, bool]] = {}  # tp → offset → acked

    def track(self, tp: tuple[str, int], offset: int) -> None:
        self.open.setdefault(tp, {})[offset] = False

    def ack(self, tp: tuple[str, int], offset: int) -> None:
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
        self._commit(tp, finished[-1] + 1)

    def _commit(self, tp: tuple[str, int], offset: int) -> None:
        """Synchronously; a retriable refusal (the group's coordinator loading or moving,
        a timeout on a busy broker) is tried again a few times before it is reported."""
        for attempt in range(_COMMIT_ATTEMPTS):
            try:
                self.consumer.commit(offsets=[TopicPartition(tp[0], tp[1], offset)],
                                     asynchronous=False)
                return
            except KafkaException as exc:
                error = exc.args[0] if exc.args else None
                retriable = isinstance(error, KafkaError) and is_retriable(error)
                if not retriable or attempt + 1 == _COMMIT_ATTEMPTS:
                    raise DestinationError(f"kafka redrive commit of {tp[0]}-{tp[1]} at "
                                           f"{offset} failed: {error or exc}") from exc
                time.sleep(0.5 * (attempt + 1))


def _entry(message: Any, prefix: _CommitPrefix) -> Notice:
    tp = (message.topic(), message.partition())
    offset = message.offset()
    value = message.value()
    try:
        notice = orjson.loads(value) if value is not None else None
    except orjson.JSONDecodeError:
        notice = None
    notice = notice if isinstance(notice, dict) else {}
    prefix.track(tp, offset)
    return notice_id(notice, message), notice, lambda: prefix.ack(tp, offset)


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
    return f"kafka-message:{message.topic()}-{message.partition()}@{message.offset()}"
