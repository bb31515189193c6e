"""Latency at light load: produce → handler, through the whole daemon, window 0.

    python -m tests.bench.bench_latency [--rate 200] [--seconds 10] [--source redis|kafka]

A producer writes `rate` records/s, each stamped with the moment it was sent; the no-op
Python handler, in the same process (one clock), notes how long ago each of its records
was stamped. The first second is left out (group join, first connections). Prints p50,
p99 and max in ms per source. The machine is shared: read medians and compare sources of
one run, not runs.
"""

from __future__ import annotations

import argparse
import base64
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from esm.config.loading import load_config
from esm.runtime.daemon import Daemon

LATENCIES: list[float] = []  # seconds from send to handler, in arrival order


def _note(stamps: list[float]) -> None:
    now = time.perf_counter()
    LATENCIES.extend(now - t for t in stamps)


def redis_handler(event: dict[str, Any], context: object) -> None:
    _note([orjson.loads(r["body"])["t"] for r in event["Records"]])


def kafka_handler(event: dict[str, Any], context: object) -> None:
    _note([orjson.loads(base64.b64decode(r["value"]))["t"]
           for records in event["records"].values() for r in records])


def stamped() -> bytes:
    return orjson.dumps({"t": time.perf_counter(), "type": "order"})


def paced(rate: float, seconds: float, send: Callable[[], None]) -> None:
    """`send` `rate` times a second for `seconds`, on a schedule (no drift)."""
    interval, start = 1.0 / rate, time.perf_counter()
    for n in range(int(rate * seconds)):
        delay = start + n * interval - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        send()


@contextmanager
def running(config_text: str) -> Iterator[Daemon]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(config_text)
        daemon = Daemon(load_config([str(path)], {}))
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.shutdown()


MAPPING = """
mappings:
  - name: bench
    source: {source}
    batch_size: 100
    maximum_batching_window_in_seconds: 0
    target: {{type: python, handler: "tests.bench.bench_latency:{handler}", timeout_seconds: 10}}
server: {{enabled: false}}
"""


def redis_run(rate: float, seconds: float) -> None:
    import redis

    from tests.servers.redis_server import RedisServer
    server = RedisServer(appendfsync="everysec")
    server.start()
    try:
        client, stream = redis.Redis.from_url(server.url), f"lat-{uuid.uuid4().hex[:6]}"
        source = (f'{{type: redis_streams, url: "{server.url}", streams: [{stream}], '
                  f'consumer_group: lat}}')
        with running(MAPPING.format(source=source, handler="redis_handler")):
            time.sleep(1.0)  # the group is created and the first read is waiting
            paced(rate, seconds, lambda: client.xadd(stream, {"body": stamped()}))
            time.sleep(0.5)
        client.close()
    finally:
        server.cleanup()


def kafka_run(rate: float, seconds: float) -> None:
    from kafka import KafkaProducer

    from tests.contract.test_kafka_source import make_topic
    from tests.servers.kafka_server import start_kafka
    workdir = Path(tempfile.mkdtemp(prefix="esm-kafka-lat-"))
    server = start_kafka(workdir)
    try:
        topic = make_topic(server, 4)
        producer = KafkaProducer(bootstrap_servers=server.bootstrap, linger_ms=0)
        source = (f'{{type: kafka, bootstrap_servers: ["{server.bootstrap}"], topics: [{topic}], '
                  f'consumer_group_id: lat, starting_position: LATEST}}')
        with running(MAPPING.format(source=source, handler="kafka_handler")):
            time.sleep(3.0)  # the group is joined and partitions assigned
            paced(rate, seconds, lambda: producer.send(topic, stamped()))
            time.sleep(0.5)
        producer.close()
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def noted() -> list[float]:
    """The handler's list: the daemon imports this file by its module name, which is not
    `__main__` when run with -m."""
    from tests.bench import bench_latency
    return bench_latency.LATENCIES


def summary(rate: float) -> str:
    kept = sorted(noted()[int(rate):])  # the first second left out
    if not kept:
        return "no records reached the handler"
    p99 = kept[min(len(kept) - 1, int(len(kept) * 0.99))]
    return (f"p50 {statistics.median(kept) * 1e3:.2f} ms, p99 {p99 * 1e3:.2f} ms, "
            f"max {kept[-1] * 1e3:.2f} ms ({len(kept)} records)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--source", choices=("redis", "kafka"), action="append")
    args = parser.parse_args()
    runs = {"redis": redis_run, "kafka": kafka_run}
    for name in args.source or list(runs):
        noted().clear()
        runs[name](args.rate, args.seconds)
        print(f"{name:5} at {args.rate:.0f} rec/s, window 0: {summary(args.rate)}", flush=True)


if __name__ == "__main__":
    main()
