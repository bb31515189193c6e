"""Benchmark: records/s through the Kafka source vs a raw kafka-python poll+commit loop.

Run: `python3 -m tests.bench.bench_kafka [records]`. Starts its own broker (tests/servers),
writes the records once per run to a fresh topic, and prints figures (no asserts):
- raw: KafkaConsumer.poll + synchronous commit per poll, nothing else;
- source: KafkaSource.poll → per-lane batches of `batch_size` → build_event + orjson encode
  (what a no-op target costs the reader) → ack (commit), for several batch sizes.
The batching window is a wait on top of this loop; with a steady backlog batches close on
size, so the window only matters for trickling traffic (printed as the added latency).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import orjson
from kafka import KafkaConsumer, KafkaProducer
from kafka.structs import OffsetAndMetadata

from connectors.sources.kafka import KafkaSource
from esm.clock import SystemClock
from esm.interfaces import ConnectorContext
from esm.records import Record
from tests.contract.test_kafka_source import FakeLanes, make_topic
from tests.servers.kafka_server import KafkaServer, start_kafka

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
    return topic


def raw_loop(server: KafkaServer, topic: str, count: int) -> float:
    consumer = KafkaConsumer(topic, bootstrap_servers=server.bootstrap, enable_auto_commit=False,
                             group_id=f"raw-{uuid.uuid4().hex}", auto_offset_reset="earliest")
    seen, start = 0, time.perf_counter()
    while seen < count:
        fetched = consumer.poll(timeout_ms=200, max_records=500)
        for tp, messages in fetched.items():
            seen += len(messages)
            consumer.commit({tp: OffsetAndMetadata(messages[-1].offset + 1, "", -1)})
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


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    workdir = Path(tempfile.mkdtemp(prefix="esm-kafka-bench-"))
    server = start_kafka(workdir)
    try:
        topic = fill(server, count)
        raw = raw_loop(server, topic, count)
        print(f"raw kafka-python poll+commit: {raw:,.0f} records/s ({count} records)")
        for batch_size in (10, 100, 500):
            rate = source_loop(server, topic, count, batch_size)
            print(f"esm KafkaSource batch_size={batch_size}: {rate:,.0f} records/s, "
                  f"ratio to raw {rate / raw:.0%}")
        print("batching window: adds up to the window (0.5 s default) of latency to a batch "
              "that does not fill; it does not change backlog throughput")
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
