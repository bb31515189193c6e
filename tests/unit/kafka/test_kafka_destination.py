"""Kafka topic destination against a fake librdkafka producer: one message per record,
same key; a send returns only when every message was acknowledged."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from confluent_kafka import KafkaError

from connectors.kafka.destination import KafkaDestination
from connectors.kafka.event import KafkaEvents
from esm.errors import DestinationError
from esm.records import Record

Report = Callable[[KafkaError | None, Any], None]


def record(offset: int, key: bytes | None = b"k1") -> Record:
    payload: dict[str, Any] = {
        "topic": "orders", "partition": 2, "offset": offset, "timestamp": 1_545_084_650_987,
        "timestampType": "CREATE_TIME", "value": base64.b64encode(b"{}").decode(),
        "headers": []}
    if key is not None:
        payload["key"] = base64.b64encode(key).decode()
    return Record(lane="orders-2", position=str(offset), item_id=f"orders-2@{offset}",
                  payload=payload, size_bytes=len(orjson.dumps(payload)), timestamp=0.0)


class Sent:
    def __init__(self, topic: str) -> None:
        self._topic = topic

    def topic(self) -> str:
        return self._topic


class FakeProducer:
    """confluent_kafka.Producer's calls the destination makes; deliveries are reported on
    flush, as librdkafka does from its callback-serving calls."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.sent: list[tuple[str, bytes | None, bytes]] = []
        self.error: KafkaError | None = None
        self.unanswered = False  # the broker never acknowledges
        self.reports: list[tuple[Report, str]] = []

    def list_topics(self, timeout: float) -> object:
        return object()

    def poll(self, timeout: float) -> int:
        return 0

    def produce(self, topic: str, value: bytes, key: bytes | None, headers: Any,
                on_delivery: Report) -> None:
        self.sent.append((topic, key, value))
        self.reports.append((on_delivery, topic))

    def flush(self, timeout: float) -> int:
        if self.unanswered:
            return len(self.reports)
        for report, topic in self.reports:
            report(self.error, Sent(topic))
        self.reports.clear()
        return 0


def make(topic: str = "dlq") -> tuple[KafkaDestination, FakeProducer]:
    producers: list[FakeProducer] = []

    def factory(config: dict[str, Any]) -> FakeProducer:
        producers.append(FakeProducer(config))
        return producers[-1]
    dest = KafkaDestination(KafkaDestination.Settings(bootstrap_servers=("b:1",), topic=topic,
                                                      timeout_seconds=1),
                            None, producer_factory=factory, environ={})
    dest._client()
    return dest, producers[0]


def test_sends_one_message_per_record_keyed_like_the_original() -> None:
    dest, producer = make()
    records = [record(4), record(5, key=None)]
    notice = {"requestContext": {"condition": "RetryAttemptsExhausted"}, "version": "1.0",
              "KafkaBatchInfo": KafkaEvents(["b:1"]).batch_info(records)}
    dest.send(notice, records)
    assert [(t, k) for t, k, _ in producer.sent] == [("dlq", b"k1"), ("dlq", None)]
    first = orjson.loads(producer.sent[0][2])
    assert first["requestContext"] == {"condition": "RetryAttemptsExhausted"}
    assert first["KafkaBatchInfo"]["batchSize"] == 1
    assert first["KafkaBatchInfo"]["recordInfo"] == {"offset": "4",
                                                     "timestamp": 1_545_084_650_987}
    assert first["payload"]["records"] == {"orders-2": [records[0].payload]}
    assert base64.b64decode(first["payload"]["records"]["orders-2"][0]["key"]) == b"k1"


def test_the_producer_waits_for_all_replicas_and_partitions_like_java() -> None:
    _, producer = make()
    assert producer.config["acks"] == "all" and producer.config["enable.idempotence"] is True
    assert producer.config["partitioner"] == "murmur2_random"
    assert producer.config["message.timeout.ms"] == 1000
    assert producer.config["bootstrap.servers"] == "b:1"


def test_refuses_to_write_to_the_records_own_topic() -> None:
    dest, producer = make(topic="orders")
    with pytest.raises(DestinationError, match="own topic"):
        dest.send({}, [record(1)])
    assert producer.sent == []


def test_a_refused_write_raises_destination_error_naming_the_cause() -> None:
    dest, producer = make()
    producer.error = KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED, "denied")
    with pytest.raises(DestinationError, match="1 of 1 messages not written.*"
                                               "TOPIC_AUTHORIZATION_FAILED"):
        dest.send({}, [record(1)])


def test_an_unacknowledged_write_raises_destination_error() -> None:
    dest, producer = make()
    producer.unanswered = True
    with pytest.raises(DestinationError, match="2 of 2 messages not acknowledged within 1 s"):
        dest.send({}, [record(1), record(2)])
