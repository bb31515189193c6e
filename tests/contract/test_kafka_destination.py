"""Contract test of the Kafka topic destination against a real broker."""
# ruff: noqa: F811  (pytest fixtures are imported by name, then requested by name)

from __future__ import annotations

import time
import uuid

import orjson
import pytest
from kafka import KafkaConsumer

from connectors.kafka.destination import KafkaDestination
from connectors.kafka.event import KafkaEvents, to_record
from tests.contract.test_kafka_source import make_topic
from tests.servers.kafka_server import KafkaServer, kafka_server  # noqa: F401
from tests.unit.kafka.test_kafka_event import Msg

pytestmark = pytest.mark.integration


def test_writes_one_durable_message_per_failed_record_with_its_key(
        kafka_server: KafkaServer) -> None:
    # Given a dead-letter topic and two failed records
    topic = make_topic(kafka_server, 1)
    dest = KafkaDestination(KafkaDestination.Settings(
        bootstrap_servers=(kafka_server.bootstrap,), topic=topic), None)
    records = [to_record(Msg(7, key=b"a"), now=0.0), to_record(Msg(8, key=b"b"), now=0.0)]
    notice = {"requestContext": {"condition": "RetryAttemptsExhausted"},
              "KafkaBatchInfo": KafkaEvents([kafka_server.bootstrap]).batch_info(records)}
    # When the notice is sent
    dest.send(notice, records)
    dest.close()
    # Then the topic holds one message per record, keyed like the original
    consumer = KafkaConsumer(topic, bootstrap_servers=kafka_server.bootstrap,
                             auto_offset_reset="earliest", group_id=f"r-{uuid.uuid4().hex}")
    got = []
    deadline = time.monotonic() + 30
    while len(got) < 2 and time.monotonic() < deadline:
        for messages in consumer.poll(500).values():
            got.extend(messages)
    consumer.close()
    assert [m.key for m in got] == [b"a", b"b"]
    bodies = [orjson.loads(m.value) for m in got]
    assert [b["KafkaBatchInfo"]["recordInfo"]["offset"] for b in bodies] == ["7", "8"]
    assert bodies[0]["payload"]["records"]["orders-2"][0]["offset"] == 7
