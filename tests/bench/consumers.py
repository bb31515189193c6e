"""One benchmark consumer, run in a process of its own by `python -m tests.bench`:

    python -m tests.bench.consumers CONTENDER KIND ADDRESS KEY COUNT BATCH

CONTENDER is esm (the whole daemon, no-op Python handler, window 0), raw (redis-py
XREADGROUP + XACK, or kafka-python poll + synchronous commit per poll), confluent (Kafka
only: the same loop on confluent-kafka, librdkafka) or faststream (a batch subscriber
with a no-op handler, acking after it; no payload validation). KIND is
redis or kafka (the other sources' consumers: tests/bench/contenders.py); each run
reads the prefilled stream or topic from its start in a consumer group of its own. The
clock runs from the first read until COUNT records are acked or committed; one line
`FIGURES <json>` is printed: seconds, CPU seconds in that span, peak RSS in KiB.
"""

from __future__ import annotations

import asyncio
import resource
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson


def noop(event: Any, context: object) -> None:
    """The handler every contender calls."""


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


ESM_CONFIG = """
mappings:
  - name: bench
    source: {source}
    batch_size: {batch}
    maximum_batching_window_in_seconds: 0
    target: {{type: python, handler: "tests.bench.consumers:noop", timeout_seconds: 10}}
server: {{enabled: false}}
"""


def esm_run(kind: str, address: str, key: str, count: int, batch: int) -> None:
    from esm.config.loading import load_config
    from esm.runtime.daemon import Daemon
    from tests.bench.progress import wait_for_count
    group = f"esm-{uuid.uuid4().hex[:8]}"
    if kind == "redis":
        source = (f'{{type: redis_streams, url: "{address}", streams: [{key}], '
                  f'consumer_group: {group}, starting_position: TRIM_HORIZON}}')
    else:
        source = (f'{{type: kafka, bootstrap_servers: ["{address}"], topics: [{key}], '
                  f'consumer_group_id: {group}, starting_position: TRIM_HORIZON}}')
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(ESM_CONFIG.format(source=source, batch=batch))
        daemon = Daemon(load_config([str(path)], {}))
    mark()  # the daemon's clock starts as it starts (opening the source is reading)
    daemon.start()
    done = wait_for_count(daemon, "deleted" if kind == "redis" else "committed", count,
                          timeout_seconds=900)
    end_cpu, end = cpu(), time.perf_counter()
    daemon.shutdown()
    assert done >= count, f"esm: {done} of {count}"
    report(end, end_cpu)


def raw_redis(address: str, key: str, count: int, batch: int) -> None:
    import redis
    client, group = redis.Redis.from_url(address), f"raw-{uuid.uuid4().hex[:8]}"
    client.xgroup_create(key, group, id="0")
    mark()
    done = 0
    while done < count:
        for _, entries in client.xreadgroup(group, "c", {key: ">"}, count=batch, block=100):
            noop(entries, None)
            client.xack(key, group, *[i for i, _ in entries])
            done += len(entries)
    report(time.perf_counter(), cpu())


def raw_kafka(address: str, key: str, count: int, batch: int) -> None:
    from kafka import KafkaConsumer
    consumer = KafkaConsumer(key, bootstrap_servers=address, enable_auto_commit=False,
                             group_id=f"raw-{uuid.uuid4().hex[:8]}",
                             auto_offset_reset="earliest")
    mark()
    done = 0
    while done < count:
        fetched = consumer.poll(timeout_ms=200, max_records=batch)
        for messages in fetched.values():
            noop(messages, None)
            done += len(messages)
        if fetched:
            consumer.commit()
    report(time.perf_counter(), cpu())
    consumer.close()


def raw_confluent(address: str, key: str, count: int, batch: int) -> None:
    """kafka-python's loop on librdkafka (confluent-kafka): what a C client costs."""
    from confluent_kafka import Consumer
    consumer = Consumer({"bootstrap.servers": address, "group.id": f"rdk-{uuid.uuid4().hex[:8]}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([key])
    mark()
    done = 0
    while done < count:
        messages = [m for m in consumer.consume(batch, 0.2) if m.error() is None]
        noop([(m.key(), m.value(), m.headers()) for m in messages], None)
        done += len(messages)
        if messages:
            consumer.commit(asynchronous=False)
    report(time.perf_counter(), cpu())
    consumer.close()


def faststream_run(kind: str, address: str, key: str, count: int, batch: int) -> None:
    from faststream import AckPolicy
    done = asyncio.Event()
    seen = [0]

    async def handle(messages: Any) -> None:
        noop(messages, None)
        seen[0] += len(messages)
        if seen[0] >= count:
            done.set()

    broker: Any
    if kind == "redis":
        from faststream.redis import RedisBroker, StreamSub
        broker = RedisBroker(address)
        stream = StreamSub(key, group=f"fs-{uuid.uuid4().hex[:8]}", consumer="c", batch=True,
                           max_records=batch, last_id="0")
        broker.subscriber(stream=stream, ack_policy=AckPolicy.ACK)(handle)
    else:
        from faststream.kafka import KafkaBroker
        broker = KafkaBroker(address)
        broker.subscriber(key, group_id=f"fs-{uuid.uuid4().hex[:8]}", batch=True,
                          max_records=batch, auto_offset_reset="earliest",
                          ack_policy=AckPolicy.ACK)(handle)

    async def main() -> None:
        mark()
        async with broker:
            await broker.start()
            await done.wait()
            report(time.perf_counter(), cpu())

    asyncio.run(main())


_START: list[float] = []


def mark() -> None:
    _START[:] = [time.perf_counter(), cpu()]


def report(end: float, end_cpu: float) -> None:
    start, start_cpu = _START or (end, end_cpu)
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec, so a child would report
    # the parent's peak when that is higher.
    status = Path("/proc/self/status").read_text().split("VmHWM:")[1]
    peak_kib = int(status.split()[0])
    print("FIGURES " + orjson.dumps({"seconds": end - start, "cpu": end_cpu - start_cpu,
                        "rss_kib": peak_kib}).decode(), flush=True)


def main() -> None:
    contender, kind, address, key, count, batch = sys.argv[1:7]
    from tests.bench import contenders  # SQS, RabbitMQ, ActiveMQ, Kinesis, DynamoDB Streams
    if kind in contenders.KINDS:
        contenders.run(contender, kind, address, key, int(count), int(batch))
        return
    runs: dict[str, Callable[[], None]] = {
        "esm": lambda: esm_run(kind, address, key, int(count), int(batch)),
        "raw": lambda: (raw_redis if kind == "redis" else raw_kafka)(
            address, key, int(count), int(batch)),
        "faststream": lambda: faststream_run(kind, address, key, int(count), int(batch)),
        "confluent": lambda: raw_confluent(address, key, int(count), int(batch)),
    }
    runs[contender]()


if __name__ == "__main__":
    main()
