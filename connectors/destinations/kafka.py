"""Kafka topic on-failure destination (ESM-SPEC §4.4, §4.5 Kafka-topic form, §8 item 59).

One message per failed record, keyed with the record's original key (null key → the
producer spreads them), whose value is the notice with `KafkaBatchInfo` narrowed to that
record (`batchSize: 1`, `recordInfo: {offset, timestamp}`) and `payload` = a Kafka event
holding only that record. `send` returns only after the broker acknowledged every message
(acks=all); anything else raises DestinationError, so the core never acks past it.
The destination refuses to write to a topic the failed record came from.
"""

from __future__ import annotations

import base64
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from kafka import KafkaProducer  # type: ignore[import-untyped]
from kafka import errors as kafka_errors

from connectors.sources.kafka_security import KafkaSecuritySettings, client_options
from esm.errors import DestinationError
from esm.records import Record


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
    single["payload"] = {"eventSource": "SelfManagedKafka", "bootstrapServers": bootstrap,
                         "records": {record.lane: [record.payload]}}
    return single
