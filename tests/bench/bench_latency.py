"""Latency at light load: produce → handler, through the whole daemon, window 0, beside the
raw client loop in the same run.

    python -m tests.bench.bench_latency [--rate 200] [--seconds 10] [--rounds 3]
                                        [--source redis|kafka]
                                        [--producer kafka-python|confluent] [--inside]

A producer process writes `rate` records/s, each stamped with CLOCK_MONOTONIC (the same
clock in every process) at the moment it is sent (Kafka: kafka-python's producer, or with
`--producer confluent` librdkafka's, both with linger 0). The consumer — esm's daemon with
a no-op Python handler, or the raw loop (redis-py XREADGROUP BLOCK + XACK; kafka-python
poll + commit, and confluent-kafka consume + commit, esm's own Kafka client; `floor` is
confluent-kafka consuming without committing, what the client delivers before any
guarantee, and `floor-commit` the same with an asynchronous commit after each batch, as
esm commits) — notes how long ago each record was stamped when its handler sees it. The
first second is left out (group join, first connections). Rounds alternate the contenders,
after a round that is not counted (it warms the servers); the figures are medians over
rounds of each round's p50, p99 and max. The Kafka broker's JVM runs as Kafka's start
scripts run it (tests/servers/kafka_server.py, SHIPPED_JVM). The machine is
shared: compare the lines of one run, not runs.

`--inside` (Kafka) also times esm's own part: from the source's `consume()` returning one
message to the handler seeing it, as wall time and as the reader thread's CPU time (the
handler runs on that thread when placed there, esm.threads.placement).
"""

from __future__ import annotations

import argparse
import base64
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager as ContextManager
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import orjson

from esm.config.loading import load_config
from esm.runtime.daemon import Daemon

LATENCIES: list[float] = []  # seconds from send to handler, in arrival order
# --inside: (wall, CPU) seconds from consume() returning one message to its handler; the
# stamp of the latest consume() that returned messages: wall, thread CPU, thread, count.
INSIDE: list[tuple[float, float | None]] = []
CONSUMED: list[float] = []


def _note(stamps: list[float]) -> None:
    now = time.monotonic()
    noted().extend(now - t for t in stamps)


def noted() -> list[float]:
    return shared().LATENCIES


def shared() -> Any:
    """This file as the daemon imports it (by its module name, which is not `__main__`
    when run with -m): the module whose lists the handlers fill."""
    from tests.bench import bench_latency
    return bench_latency


def redis_handler(event: dict[str, Any], context: object) -> None:
    _note([orjson.loads(r["body"])["t"] for r in event["Records"]])


def kafka_handler(event: dict[str, Any], context: object) -> None:
    wall, cpu = time.monotonic(), time.thread_time()
    stamps = [orjson.loads(base64.b64decode(r["value"]))["t"]
              for records in event["records"].values() for r in records]
    _note(stamps)
    consumed = shared().CONSUMED
    if consumed and len(stamps) == 1 and consumed[3] == 1:
        same_thread = consumed[2] == threading.get_ident()
        shared().INSIDE.append((wall - consumed[0], cpu - consumed[1] if same_thread else None))
        consumed.clear()  # one message, one measurement


@contextmanager
def timing_inside() -> Iterator[None]:
    """Stamp the Kafka source's `consume()` whenever it returns messages (see --inside)."""
    from connectors.kafka.source import KafkaSource
    original = KafkaSource.__dict__["_consume"]

    def consume(consumer: Any, room: int, timeout: float) -> list[Any]:
        messages: list[Any] = original.__func__(consumer, room, timeout)
        if messages:
            shared().CONSUMED[:] = [time.monotonic(), time.thread_time(),
                                    threading.get_ident(), len(messages)]
        return messages
    KafkaSource._consume = staticmethod(consume)  # type: ignore[method-assign]
    try:
        yield
    finally:
        KafkaSource._consume = original  # type: ignore[method-assign]


# ---- the producer process ----------------------------------------------------------------

def produce(kind: str, address: str, key: str, rate: float, seconds: float) -> None:
    """`rate` stamped records a second for `seconds`, on a schedule (no drift)."""
    send: Callable[[], object]
    if kind == "redis":
        import redis
        client = redis.Redis.from_url(address)
        send = lambda: client.xadd(key, {"body": stamped()})  # noqa: E731
    elif kind == "kafka":
        from kafka import KafkaProducer
        producer = KafkaProducer(bootstrap_servers=address, linger_ms=0)
        send = lambda: producer.send(key, stamped())  # noqa: E731
    else:  # librdkafka's producer: its broker thread sends at once with linger 0
        from confluent_kafka import Producer
        producer = Producer({"bootstrap.servers": address, "linger.ms": 0})

        def send() -> None:
            producer.produce(key, stamped())
            producer.poll(0)  # serves delivery reports, so that the queue does not grow
    interval, start = 1.0 / rate, time.monotonic()
    for n in range(int(rate * seconds)):
        delay = start + n * interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        send()
    if kind != "redis":
        producer.flush()


def stamped() -> bytes:
    return orjson.dumps({"t": time.monotonic(), "type": "order"})


PRODUCER = {"redis": "redis", "kafka": "kafka"}  # source -> the producer's client; --producer


def run_producer(kind: str, address: str, key: str, rate: float, seconds: float) -> None:
    subprocess.run([sys.executable, "-m", "tests.bench.bench_latency", "--produce",
                    PRODUCER[kind], address, key, str(rate), str(seconds)], check=True)


# ---- consumers ---------------------------------------------------------------------------

MAPPING = """
mappings:
  - name: bench
    source: {source}
    batch_size: 100
    maximum_batching_window_in_seconds: 0
    target: {{type: python, handler: "tests.bench.bench_latency:{handler}", timeout_seconds: 10}}
server: {{enabled: false}}
"""


@contextmanager
def esm_consumer(kind: str, address: str, key: str) -> Iterator[None]:
    if kind == "redis":
        source = (f'{{type: redis_streams, url: "{address}", streams: [{key}], '
                  f'consumer_group: esm-{uuid.uuid4().hex[:6]}, starting_position: LATEST}}')
    else:
        source = (f'{{type: kafka, bootstrap_servers: ["{address}"], topics: [{key}], '
                  f'consumer_group_id: esm-{uuid.uuid4().hex[:6]}, '
                  f'starting_position: LATEST}}')
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(MAPPING.format(source=source, handler=f"{kind}_handler"))
        daemon = Daemon(load_config([str(path)], {}))
    daemon.start()
    try:
        yield
    finally:
        daemon.shutdown()


def raw_consumer(kind: str, address: str, key: str) -> ContextManager[None]:
    return looping(raw_redis if kind == "redis" else raw_kafka, address, key)


@contextmanager
def looping(loop: Callable[[str, str, threading.Event], None], address: str,
            key: str) -> Iterator[None]:
    """`loop(address, key, stop)` on a thread of its own while the block runs."""
    stop = threading.Event()
    thread = threading.Thread(target=loop, args=(address, key, stop))
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def raw_redis(address: str, stream: str, stop: threading.Event) -> None:
    import redis
    client, group = redis.Redis.from_url(address), f"raw-{uuid.uuid4().hex[:6]}"
    client.xgroup_create(stream, group, id="$", mkstream=True)
    while not stop.is_set():
        reply = client.xreadgroup(group, "c", {stream: ">"}, count=100, block=100)
        for _, entries in reply:
            redis_handler({"Records": [{"body": f[b"body"]} for _, f in entries]}, None)
            client.xack(stream, group, *[i for i, _ in entries])
    client.close()


def raw_kafka(address: str, topic: str, stop: threading.Event) -> None:
    from kafka import KafkaConsumer
    consumer = KafkaConsumer(topic, bootstrap_servers=address, enable_auto_commit=False,
                             group_id=f"raw-{uuid.uuid4().hex[:6]}", auto_offset_reset="latest")
    while not stop.is_set():
        fetched = consumer.poll(timeout_ms=100, max_records=100)
        for messages in fetched.values():
            kafka_handler({"records": {"p": [{"value": base64.b64encode(m.value)}
                                             for m in messages]}}, None)
        if fetched:
            consumer.commit()
    consumer.close()


def raw_confluent(address: str, topic: str, stop: threading.Event,
                  commit: str = "sync") -> None:
    """confluent-kafka (librdkafka, esm's Kafka client) consume + synchronous commit; with
    `commit` "async", an asynchronous commit after each batch, as esm commits; with "none",
    consume alone: the client's own floor, no delivery guarantee."""
    from confluent_kafka import Consumer
    consumer = Consumer({"bootstrap.servers": address, "group.id": f"raw-{uuid.uuid4().hex[:6]}",
                         "enable.auto.commit": False, "auto.offset.reset": "latest"})
    consumer.subscribe([topic])
    while not stop.is_set():
        # consume(100, t) waits for 100 messages or t: wait for one, then take what is there
        first = consumer.poll(0.1)
        if first is None:
            continue
        messages = [m for m in (first, *consumer.consume(99, 0)) if m.error() is None]
        if messages:
            kafka_handler({"records": {"p": [{"value": base64.b64encode(m.value())}
                                             for m in messages]}}, None)
            if commit != "none":
                consumer.commit(asynchronous=commit == "async")
    consumer.close()


def confluent_consumer(kind: str, address: str, key: str) -> ContextManager[None]:
    return looping(raw_confluent, address, key)


def floor_consumer(kind: str, address: str, key: str) -> ContextManager[None]:
    return looping(lambda a, k, stop: raw_confluent(a, k, stop, commit="none"), address, key)


def floor_commit_consumer(kind: str, address: str, key: str) -> ContextManager[None]:
    return looping(lambda a, k, stop: raw_confluent(a, k, stop, commit="async"), address, key)


CONSUMERS = {"esm": esm_consumer, "raw": raw_consumer, "confluent": confluent_consumer,
             "floor": floor_consumer, "floor-commit": floor_commit_consumer}
KAFKA_ONLY = {"confluent", "floor", "floor-commit"}


def one_round(kind: str, contender: str, address: str, key: str, rate: float,
              seconds: float) -> tuple[float, float, float]:
    noted().clear()
    shared().CONSUMED.clear()
    inside = shared().INSIDE
    with CONSUMERS[contender](kind, address, key):
        time.sleep(1.0 if kind == "redis" else 4.0)  # group joined, first read waiting
        started = len(inside)
        run_producer(kind, address, key, rate, seconds)
        time.sleep(0.5)
    del inside[started:started + int(rate)]  # the first second left out, as below
    kept = sorted(noted()[int(rate):])  # the first second left out
    assert len(kept) >= rate * (seconds - 1) * 0.99, f"{contender}: {len(kept)} records seen"
    return (statistics.median(kept), kept[min(len(kept) - 1, int(len(kept) * 0.99))],
            kept[-1])


# ---- servers -----------------------------------------------------------------------------

@contextmanager
def redis_address() -> Iterator[tuple[str, str]]:
    from tests.servers.redis_server import RedisServer
    server = RedisServer(appendfsync="everysec")
    server.start()
    try:
        yield server.url, f"lat-{uuid.uuid4().hex[:6]}"
    finally:
        server.cleanup()


@contextmanager
def kafka_address() -> Iterator[tuple[str, str]]:
    from tests.contract.test_kafka_source import make_topic
    from tests.servers.kafka_server import SHIPPED_JVM, start_kafka
    workdir = Path(tempfile.mkdtemp(prefix="esm-kafka-lat-"))
    server = start_kafka(workdir, jvm=SHIPPED_JVM)
    try:
        yield server.bootstrap, make_topic(server, 4)
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


SERVERS = {"redis": redis_address, "kafka": kafka_address}


def main() -> None:
    if sys.argv[1:2] == ["--produce"]:
        kind, address, key, rate, seconds = sys.argv[2:7]
        produce(kind, address, key, float(rate), float(seconds))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--source", choices=tuple(SERVERS), action="append")
    parser.add_argument("--producer", choices=("kafka-python", "confluent"),
                        default="kafka-python",
                        help="the Kafka producer's client (confluent: librdkafka's)")
    parser.add_argument("--inside", action="store_true",
                        help="Kafka: also time esm's part, consume() to handler")
    args = parser.parse_args()
    PRODUCER["kafka"] = "kafka" if args.producer == "kafka-python" else "confluent"
    print(f"{args.rate:.0f} rec/s for {args.seconds:.0f} s, window 0, batch 100; medians of "
          f"{args.rounds} rounds (contenders alternating) of p50 / p99 / max, ms", flush=True)
    for kind in args.source or list(SERVERS):
        inside = timing_inside() if args.inside and kind == "kafka" else nullcontext()
        with inside, SERVERS[kind]() as (address, key):
            contenders = [c for c in CONSUMERS if kind == "kafka" or c not in KAFKA_ONLY]
            rounds: dict[str, list[tuple[float, float, float]]] = {c: [] for c in contenders}
            # Not counted: warms the server (Kafka's JIT compiles its request path) and
            # this process's imports.
            one_round(kind, contenders[0], address, key, args.rate, args.seconds)
            shared().INSIDE.clear()
            for n in range(args.rounds):
                order = contenders if n % 2 == 0 else list(reversed(contenders))
                for contender in order:
                    rounds[contender].append(
                        one_round(kind, contender, address, key, args.rate, args.seconds))
            for contender, figures in rounds.items():
                p50, p99, worst = (statistics.median(f[i] for f in figures) * 1e3
                                   for i in range(3))
                print(f"{kind:5} {contender}: {p50:.2f} / {p99:.2f} / {worst:.2f}", flush=True)
            if args.inside and kind == "kafka":
                print_inside(shared().INSIDE)


def print_inside(measured: list[tuple[float, float | None]]) -> None:
    """esm's part of one-message batches over its counted rounds: p50 / p99 / max, ms."""
    walls = sorted(w for w, _ in measured)
    cpus = sorted(c for _, c in measured if c is not None)
    if not walls:
        print("kafka esm inside: no one-message batch seen", flush=True)
        return

    def figures(values: list[float]) -> str:
        at = (values[len(values) // 2], values[min(len(values) - 1, int(len(values) * 0.99))],
              values[-1])
        return " / ".join(f"{v * 1e3:.3f}" for v in at)
    print(f"kafka esm inside, consume() to handler, {len(walls)} one-message batches: "
          f"wall {figures(walls)}; reader thread CPU "
          f"{figures(cpus) if cpus else 'n/a (the handler ran on a lane thread)'} "
          f"({len(cpus)} on the reader's thread)", flush=True)


if __name__ == "__main__":
    main()
