"""Benchmark: records/s through the Kafka source and the whole daemon vs a raw kafka-python
poll+commit loop, all in the same run against the same topic.

Run: `python3 -m tests.bench.bench_kafka [records]`. Starts its own broker (tests/servers),
writes the records once to a fresh 4-partition topic, and prints figures (no asserts):
- raw: KafkaConsumer.poll(max_records=500) + one synchronous commit per poll, nothing else;
- source: KafkaSource.poll → per-lane batches of `batch_size` → build_event + orjson encode
  → ack, driven by hand (the connector's own cost);
- daemon: `esm.runtime.daemon.Daemon` with a Kafka mapping and a no-op python handler, from start to
  every record acked (filter, batch, invoke, settle, commit), for batch sizes 10/100/500 and
  batching windows 0 and 0.5 s. Each run uses a new consumer group, so it reads everything.
The ratio column is records/s over the raw loop's records/s (target: at least 70%).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from connectors.kafka.source import KafkaSource
from esm.clock import SystemClock
from esm.interfaces import ConnectorContext
from esm.records import Record
from tests.bench.progress import timed_daemon
from tests.contract.test_kafka_source import FakeLanes, make_topic
from tests.servers.kafka_server import SHIPPED_JVM, KafkaServer, start_kafka

PARTITIONS = 4


def fill(server: KafkaServer, count: int) -> str:
    topic = make_topic(server, PARTITIONS)
    producer = KafkaProducer(bootstrap_servers=server.bootstrap, linger_ms=20,
                             batch_size=256 * 1024)
    value = orjson.dumps({"type": "order", "amount": 12, "note": "x" * 200})
    for n in range(count):
        producer.send(topic, key=f"k{n}".encode(), value=value, partition=n % PARTITIONS)
    producer.flush(120)
    producer.close()
    warm_offsets(server, topic)
    return topic


def warm_offsets(server: KafkaServer, topic: str) -> None:
    """Commit once for a throwaway group: a fresh broker creates its offsets topic (50
    partitions, ~3 s here) at the first commit, which would otherwise be charged to
    whichever contender happens to read first."""
    consumer = KafkaConsumer(bootstrap_servers=server.bootstrap, enable_auto_commit=False,
                             group_id=f"warm-{uuid.uuid4().hex}")
    try:
        consumer.commit({TopicPartition(topic, 0): OffsetAndMetadata(0, "", -1)})
    finally:
        consumer.close()


def raw_loop(server: KafkaServer, topic: str, count: int) -> float:
    """records/s of the plain at-least-once loop: poll, then commit what it returned."""
    consumer = KafkaConsumer(topic, bootstrap_servers=server.bootstrap, enable_auto_commit=False,
                             group_id=f"raw-{uuid.uuid4().hex}", auto_offset_reset="earliest")
    seen, start = 0, time.perf_counter()
    while seen < count:
        fetched = consumer.poll(timeout_ms=200, max_records=500)
        if fetched:
            seen += sum(len(messages) for messages in fetched.values())
            consumer.commit({tp: OffsetAndMetadata(messages[-1].offset + 1, "", -1)
                             for tp, messages in fetched.items()})
    elapsed = time.perf_counter() - start
    consumer.close()
    return count / elapsed


def source_loop(server: KafkaServer, topic: str, count: int, batch_size: int) -> float:
    context = ConnectorContext(mapping="bench", stop=threading.Event(), clock=SystemClock())
    source = KafkaSource(KafkaSource.Settings(
        bootstrap_servers=(server.bootstrap,), topics=(topic,),
        consumer_group_id=f"esm-{uuid.uuid4().hex}"), context)
    source.open(FakeLanes())
    pending: dict[str, list[Record]] = {}
    seen, start = 0, time.perf_counter()
    while seen < count:
        for record in source.poll(500, 0.2):
            lane = pending.setdefault(record.lane, [])
            lane.append(record)
            if len(lane) >= batch_size:
                seen += settle(source, lane)
        if seen + sum(map(len, pending.values())) >= count:
            for lane in pending.values():
                seen += settle(source, lane) if lane else 0
    elapsed = time.perf_counter() - start
    source.close()
    return count / elapsed


def settle(source: KafkaSource, lane: list[Record]) -> int:
    orjson.dumps(source.build_event(lane))
    source.ack(lane)
    done = len(lane)
    lane.clear()
    return done


def noop(event: dict[str, object], context: object) -> None:
    """The daemon's target: a Lambda-style handler that does nothing."""


CONFIG = """
mappings:
  - name: bench
    source: {{type: kafka, bootstrap_servers: ["{bootstrap}"], topics: [{topic}],
             consumer_group_id: {group}, starting_position: TRIM_HORIZON}}
    batch_size: {batch_size}
    maximum_batching_window_in_seconds: {window}
    target: {{type: python, handler: "tests.bench.bench_kafka:noop", timeout_seconds: 60}}
server: {{enabled: false}}
"""


def daemon_loop(server: KafkaServer, topic: str, count: int, batch_size: int,
                window: float) -> float:
    """records/s of the whole daemon, from start until every record is acked."""
    config = CONFIG.format(bootstrap=server.bootstrap, topic=topic,
                           group=f"esm-{uuid.uuid4().hex}", batch_size=batch_size,
                           window=window)
    return timed_daemon(config, "committed", count)[0]


@contextmanager
def bench_broker(properties: dict[str, str] | None = None) -> Iterator[KafkaServer]:
    """A broker of its own for one benchmark run, removed afterwards; `properties` are
    broker settings (KafkaServer). Its JVM is run as Kafka's start scripts run it."""
    workdir = Path(tempfile.mkdtemp(prefix="esm-kafka-bench-"))
    server = start_kafka(workdir, properties, jvm=SHIPPED_JVM)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    with bench_broker() as server:
        topic = fill(server, count)
        raw = raw_loop(server, topic, count)
        print(f"{count} records, {PARTITIONS} partitions, 2xx-byte JSON values")
        print(f"raw kafka-python poll+commit: {raw:,.0f} records/s")
        for batch_size in (10, 100, 500):
            rate = source_loop(server, topic, count, batch_size)
            print(f"KafkaSource alone  batch_size={batch_size:<4}            {rate:>9,.0f} "
                  f"records/s  ratio {rate / raw:.0%}")
        for batch_size in (10, 100, 500):
            for window in (0.0, 0.5):
                rate = daemon_loop(server, topic, count, batch_size, window)
                print(f"esm daemon         batch_size={batch_size:<4} window={window:<4}"
                      f" {rate:>9,.0f} records/s  ratio {rate / raw:.0%}")


if __name__ == "__main__":
    main()
