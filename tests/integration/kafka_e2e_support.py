"""Kafka helpers for tests/integration/test_e2e_kafka.py, beside the generic ones in
`e2e_support` (daemon subprocess, config file, waits): the mapping document, producing
numbered records, reading the handler's journal per partition, and the group's committed
offsets against the log end offsets (the "nothing left behind" check).
"""

from __future__ import annotations

import json
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from tests.contract.test_kafka_source import make_topic
from tests.integration.e2e_support import DaemonProcess, daemon_env, wait_until, write_config
from tests.integration.handlers import read_journal
from tests.servers.kafka_server import KafkaServer, kafka_server  # noqa: F401

HANDLER = "tests.integration.kafka_handlers:record"


def kafka_mapping(server: KafkaServer, topic: str, group: str, **keys: Any) -> dict[str, Any]:
    """A mapping document: this topic and group, the journaling handler, fast retries and a
    short session timeout (a dead daemon's partitions move after 6 s)."""
    mapping: dict[str, Any] = {
        "name": "kafka-e2e",
        "source": {"type": "kafka", "bootstrap_servers": [server.bootstrap], "topics": [topic],
                   "consumer_group_id": group, "starting_position": "TRIM_HORIZON",
                   "session_timeout_seconds": 6, "request_timeout_seconds": 10},
        "batch_size": 100,
        "maximum_batching_window_in_seconds": 0,
        "retry_backoff": {"initial_seconds": 0.05, "maximum_seconds": 0.2},
        "target": {"type": "python", "handler": HANDLER, "timeout_seconds": 30},
    }
    mapping.update(keys)
    return mapping


def send_all(case: Case, messages: Iterable[dict[str, Any]]) -> None:
    """KafkaProducer.send(case.topic, **message) for each message, then flush."""
    producer = KafkaProducer(bootstrap_servers=case.server.bootstrap, linger_ms=5)
    try:
        for message in messages:
            producer.send(case.topic, **message)
        producer.flush(60)
    finally:
        producer.close()


@pytest.fixture
def one_partition(kafka_server: KafkaServer, tmp_path: Path) -> Iterator[Case]:  # noqa: F811
    """A Case over a fresh one-partition topic."""
    yield Case(kafka_server, tmp_path, 1)


def produce(server: KafkaServer, topic: str, partitions: int, count: int, start: int = 0,
            poison: frozenset[int] = frozenset()) -> None:
    """Records n = start…start+count-1, round-robin over partitions, value {"n", "poison"}."""
    producer = KafkaProducer(bootstrap_servers=server.bootstrap, linger_ms=5)
    try:
        for n in range(start, start + count):
            value = json.dumps({"n": n, "poison": n in poison}).encode()
            producer.send(topic, key=f"k{n}".encode(), value=value, partition=n % partitions)
        producer.flush(60)
    finally:
        producer.close()


def read_topic(server: KafkaServer, topic: str, count: int, timeout_seconds: float = 30
               ) -> list[Any]:
    """The first `count` messages of `topic` (fewer if they do not come in time), read
    from the start by a fresh consumer group."""
    consumer = KafkaConsumer(topic, bootstrap_servers=server.bootstrap,
                             auto_offset_reset="earliest", group_id=f"r-{uuid.uuid4().hex}")
    got: list[Any] = []
    deadline = time.monotonic() + timeout_seconds
    try:
        while len(got) < count and time.monotonic() < deadline:
            for messages in consumer.poll(500).values():
                got.extend(messages)
    finally:
        consumer.close()
    return got


def journal_lines(journal: Path, kind: str | None = None) -> list[dict[str, Any]]:
    return [line for line in read_journal(journal) if kind is None or line["kind"] == kind]


def ok_offsets(journal: Path) -> dict[int, list[int]]:
    """Per partition, the offsets of successful invocations in the order they ran."""
    by_partition: dict[int, list[int]] = defaultdict(list)
    for line in journal_lines(journal, "ok"):
        by_partition[line["partition"]].append(line["offset"])
    return dict(by_partition)


def delivered(journal: Path) -> dict[int, set[int]]:
    return {p: set(offsets) for p, offsets in ok_offsets(journal).items()}


def all_delivered(journal: Path, per_partition: dict[int, int]) -> bool:
    got = delivered(journal)
    return all(got.get(p, set()) >= set(range(n)) for p, n in per_partition.items())


def group_behind(server: KafkaServer, topic: str, group: str) -> dict[int, int]:
    """Per partition, log end offset − the group's committed offset (missing = 0 committed);
    empty when the group has committed everything."""
    admin = KafkaAdminClient(bootstrap_servers=server.bootstrap)
    consumer = KafkaConsumer(bootstrap_servers=server.bootstrap)
    try:
        committed = admin.list_group_offsets(group).get(group, {})
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = consumer.end_offsets(tps)
    finally:
        consumer.close()
        admin.close()
    behind = {tp.partition: ends[tp] - (committed[tp].offset if tp in committed else 0)
              for tp in tps}
    return {p: n for p, n in behind.items() if n}


def group_stable_members(server: KafkaServer, group: str) -> int:
    """Members of a Stable group (0 while it rebalances)."""
    admin = KafkaAdminClient(bootstrap_servers=server.bootstrap)
    try:
        info = admin.describe_groups([group]).get(group, {})
    finally:
        admin.close()
    return len(info.get("members") or ()) if info.get("group_state") == "Stable" else 0


class Case:
    """One test's topic, group, journal, config and daemon log under tmp_path."""

    def __init__(self, server: KafkaServer, tmp_path: Path, partitions: int) -> None:
        self.server = server
        self.tmp_path = tmp_path
        self.partitions = partitions
        self.topic = make_topic(server, partitions)
        self.group = f"esm-e2e-{uuid.uuid4().hex[:8]}"
        self.journal = tmp_path / "journal.jsonl"
        self.log = tmp_path / "daemon.log"

    def daemon(self, name: str = "esm.yaml", knobs: dict[str, str] | None = None,
               **keys: Any) -> DaemonProcess:
        mapping = kafka_mapping(self.server, self.topic, self.group, **keys)
        config = write_config(self.tmp_path, [mapping], name=name)
        return DaemonProcess(config, daemon_env(self.journal, **(knobs or {})), self.log)

    def wait_delivered(self, per_partition: int | dict[int, int], daemon: DaemonProcess,
                       timeout_seconds: float = 90) -> None:
        """Until offsets 0..n-1 of every partition were processed successfully."""
        want = per_partition if isinstance(per_partition, dict) else {
            p: per_partition for p in range(self.partitions)}
        wait_until(lambda: all_delivered(self.journal, want), timeout_seconds,
                   lambda: f"delivered so far: {self.progress()}\n{daemon.log_tail()}")

    def progress(self) -> dict[int, int]:
        """Distinct offsets processed per partition."""
        return {p: len(set(o)) for p, o in ok_offsets(self.journal).items()}

    def wait_committed(self, daemon: DaemonProcess, timeout_seconds: float = 30) -> None:
        wait_until(lambda: not group_behind(self.server, self.topic, self.group),
                   timeout_seconds, lambda: f"group behind end offsets: "
                   f"{group_behind(self.server, self.topic, self.group)}\n{daemon.log_tail()}")


def stop_cleanly(daemon: DaemonProcess) -> None:
    daemon.terminate()
    code = daemon.wait_exit(30)
    assert code == 0, f"esm run exited {code} after SIGTERM\n{daemon.log_tail()}"
