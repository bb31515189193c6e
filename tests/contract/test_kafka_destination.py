"""Contract test of the Kafka topic destination against a real broker."""
# ruff: noqa: F811  (pytest fixtures are imported by name, then requested by name)

from __future__ import annotations

import time

import orjson
import pytest

from connectors.kafka.destination import KafkaDestination
from connectors.kafka.event import KafkaEvents
from esm.errors import DestinationError
from tests.contract.test_kafka_source import make_topic
from tests.integration.kafka_e2e_support import read_topic
from tests.servers.kafka_server import KafkaServer, kafka_server  # noqa: F401
from tests.unit.kafka.test_kafka_destination import record

pytestmark = pytest.mark.integration


def test_writes_one_durable_message_per_failed_record_with_its_key(
        kafka_server: KafkaServer) -> None:
    # Given a dead-letter topic and two failed records
    topic = make_topic(kafka_server, 1)
    dest = KafkaDestination(KafkaDestination.Settings(
        bootstrap_servers=(kafka_server.bootstrap,), topic=topic), None)
    records = [record(7, key=b"a"), record(8, key=b"b")]
    notice = {"requestContext": {"condition": "RetryAttemptsExhausted"},
              "KafkaBatchInfo": KafkaEvents([kafka_server.bootstrap]).batch_info(records)}
    # When the notice is sent
    dest.send(notice, records)
    dest.close()
    # Then the topic holds one message per record, keyed like the original
    got = read_topic(kafka_server, topic, 2)
    assert [m.key for m in got] == [b"a", b"b"]
    bodies = [orjson.loads(m.value) for m in got]
    assert [b["KafkaBatchInfo"]["recordInfo"]["offset"] for b in bodies] == ["7", "8"]
    assert bodies[0]["payload"]["records"]["orders-2"][0]["offset"] == 7


def test_an_unreachable_cluster_is_named_not_taken_for_a_slow_send() -> None:
    # Given a destination whose bootstrap address nothing listens on
    dest = KafkaDestination(KafkaDestination.Settings(
        bootstrap_servers=("127.0.0.1:1",), topic="dlq", timeout_seconds=2), None)
    # When a notice is sent, Then the send fails naming the refused connection
    started = time.monotonic()
    with pytest.raises(DestinationError, match="kafka destination 'dlq': .*Connection refused"):
        dest.send({}, [record(1)])
    assert time.monotonic() - started < 10
