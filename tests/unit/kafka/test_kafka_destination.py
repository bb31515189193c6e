"""Kafka topic destination against a fake producer: one message per record, same key."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from kafka import errors as kafka_errors

from connectors.kafka.destination import KafkaDestination
from connectors.kafka.event import KafkaEvents, to_record
from esm.errors import DestinationError
from tests.unit.kafka.test_kafka_event import Msg


class Future:
    def __init__(self, error: Exception | None) -> None:
        self.error = error

    def get(self, timeout: float) -> None:
        if self.error:
            raise self.error


class FakeProducer:
    def __init__(self, **options: Any) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []
        self.error: Exception | None = None

    def send(self, topic: str, key: bytes | None, value: bytes) -> Future:
        self.sent.append((topic, key, value))
        return Future(self.error)


def make(topic: str = "dlq") -> tuple[KafkaDestination, FakeProducer]:
    producers: list[FakeProducer] = []

    def factory(**kw: Any) -> FakeProducer:
        producers.append(FakeProducer(**kw))
        return producers[-1]
    dest = KafkaDestination(KafkaDestination.Settings(bootstrap_servers=("b:1",), topic=topic),
                            None, producer_factory=factory, environ={})
    dest._client()
    return dest, producers[0]


def test_sends_one_message_per_record_keyed_like_the_original() -> None:
    dest, producer = make()
    records = [to_record(Msg(4), now=0.0), to_record(Msg(5, key=None), now=0.0)]
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


def test_refuses_to_write_to_the_records_own_topic() -> None:
    dest, producer = make(topic="orders")
    with pytest.raises(DestinationError, match="own topic"):
        dest.send({}, [to_record(Msg(1), now=0.0)])
    assert producer.sent == []


def test_unacknowledged_write_raises_destination_error() -> None:
    dest, producer = make()
    producer.error = kafka_errors.KafkaTimeoutError()
    with pytest.raises(DestinationError):
        dest.send({}, [to_record(Msg(1), now=0.0)])
