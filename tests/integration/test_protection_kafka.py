"""`esm run` against a real Kafka broker (KRaft): the idempotency key survives a kill -9
and the redelivery that follows, and the lag metrics equal the group's own lag.

Idempotency: with all records produced beforehand and batches closed by count, the records
are batched the same way after a restart, so the batches in flight at the kill -9 come
back whole; each must carry the key it had, and different batches different keys.

Lag: AWS's Kafka metrics (ESM-SPEC §6, checklist 68): `esm_sum_offset_lag` and
`esm_max_offset_lag` over the partitions, `esm_lane_offset_lag{lane}` per partition, equal
to log end offset − the group's committed offset, as Kafka reports them.
"""

# ruff: noqa: F811  (pytest fixtures are imported by name, then requested by name)
from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from tests.contract.test_kafka_source import make_topic
from tests.integration.e2e_support import DaemonProcess, daemon_env, wait_until, write_config
from tests.integration.handlers import read_journal
from tests.integration.kafka_e2e_support import group_behind, kafka_mapping, produce
from tests.servers.kafka_server import KafkaServer, kafka_server  # noqa: F401

pytestmark = pytest.mark.integration

KEYED = "tests.integration.handlers:keyed"


def keyed_mapping(server: KafkaServer, topic: str, group: str, **keys: Any) -> dict[str, Any]:
    return kafka_mapping(server, topic, group, batch_size=10,
                         maximum_batching_window_in_seconds=5,
                         target={"type": "python", "handler": KEYED, "timeout_seconds": 90},
                         **keys)


def invocations(journal: Path) -> list[dict[str, Any]]:
    return [line for line in read_journal(journal) if line["kind"] == "keyed"]


def test_idempotency_key_is_the_same_after_kill_9_and_redelivery(
        tmp_path: Path, kafka_server: KafkaServer) -> None:
    # Given 40 records on 2 partitions, batches of 10, and a handler that hangs for 60 s
    topic, group = make_topic(kafka_server, 2), f"idem-{uuid.uuid4().hex[:8]}"
    produce(kafka_server, topic, 2, 40)
    config = write_config(tmp_path, [keyed_mapping(kafka_server, topic, group)])
    journal, log = tmp_path / "journal.jsonl", tmp_path / "esm.log"
    with DaemonProcess(config, daemon_env(journal, sleep_seconds="60"), log) as first:
        first.wait_ready()
        # When the first batch of each partition is in the handler, the daemon is killed
        wait_until(lambda: len(invocations(journal)) >= 2, 60, first.log_tail)
        first.kill()
    before = invocations(journal)
    # And a new daemon gets the same records again (nothing was committed)
    with DaemonProcess(config, daemon_env(journal), log) as second:
        second.wait_ready()
        wait_until(lambda: sum(len(i["ids"]) for i in invocations(journal)[len(before):]) >= 40,
                   90, second.log_tail)
    after = invocations(journal)[len(before):]
    # Then each batch redelivered whole carries the key it had before the kill
    key_after = {tuple(i["ids"]): i["key"] for i in after}
    print(f"\nkafka kill -9: {len(before)} batches in flight at the kill, "
          f"{len(after)} invocations after; keys {[i['key'][:12] for i in before]}")
    assert all(len(i["ids"]) == 10 for i in before + after)
    for line in before:
        assert key_after[tuple(line["ids"])] == line["key"], line
    # And the key is also in client_context.custom, and different batches differ
    assert all(i["key"] == i["custom"] and len(i["key"]) == 64 for i in before + after)
    assert len(set(key_after.values())) == len(key_after) == 4


def test_lag_metrics_equal_the_groups_own_lag(tmp_path: Path,
                                              kafka_server: KafkaServer) -> None:
    # Given 3 partitions holding 10, 25 and 40 records, a group committed at 0 everywhere,
    # and a handler that holds every batch for 60 s
    topic, group = make_topic(kafka_server, 3), f"lag-{uuid.uuid4().hex[:8]}"
    produce_counts(kafka_server, topic, (10, 25, 40))
    commit_zero(kafka_server, topic, group, 3)
    config = write_config(tmp_path, [keyed_mapping(kafka_server, topic, group,
                                                   lane_lag_metrics=True)])
    env = daemon_env(tmp_path / "journal.jsonl", sleep_seconds="60")
    with DaemonProcess(config, env, tmp_path / "esm.log") as d:
        d.wait_ready()
        # When the daemon reports lag while the first batches are held
        wait_until(lambda: len(invocations(tmp_path / "journal.jsonl")) >= 3, 60, d.log_tail)
        time.sleep(5.5)  # a report made with all three batches in flight
        metrics = d.metrics()
        behind = group_behind(kafka_server, topic, group)
    # Then the metrics are Kafka's own figures: log end offset - committed offset
    print(f"\nkafka lag: group {behind}, metrics sum "
          f"{metrics['esm_sum_offset_lag{mapping=kafka-e2e}']} max "
          f"{metrics['esm_max_offset_lag{mapping=kafka-e2e}']}")
    assert behind == {0: 10, 1: 25, 2: 40}
    assert metrics["esm_sum_offset_lag{mapping=kafka-e2e}"] == sum(behind.values())
    assert metrics["esm_max_offset_lag{mapping=kafka-e2e}"] == max(behind.values())
    for partition, value in behind.items():
        lane = f"lane={topic}-{partition},mapping=kafka-e2e"
        assert metrics[f"esm_lane_offset_lag{{{lane}}}"] == value
    assert metrics["esm_oldest_record_age_seconds{mapping=kafka-e2e}"] > 0


def produce_counts(server: KafkaServer, topic: str, counts: tuple[int, ...]) -> None:
    """counts[p] records on partition p."""
    producer = KafkaProducer(bootstrap_servers=server.bootstrap)
    try:
        for partition, count in enumerate(counts):
            for n in range(count):
                producer.send(topic, value=f'{{"n": {n}}}'.encode(), partition=partition)
        producer.flush(30)
    finally:
        producer.close()


def commit_zero(server: KafkaServer, topic: str, group: str, partitions: int) -> None:
    """The group's committed offset is 0 on every partition (a group that read nothing)."""
    consumer = KafkaConsumer(bootstrap_servers=server.bootstrap, group_id=group,
                             enable_auto_commit=False)
    try:
        consumer.commit({TopicPartition(topic, p): OffsetAndMetadata(0, "", -1)
                         for p in range(partitions)})
    finally:
        consumer.close()
