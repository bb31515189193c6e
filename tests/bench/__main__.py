"""Every source's throughput in one run: esm, the raw client loop and FastStream.

    python -m tests.bench [--redis-records 100000] [--kafka-records 50000] [--rounds 3]
                          [--batch 100] [--only redis|kafka|kafka-linger0|sqs|rabbitmq|
                          activemq|kinesis|dynamodb] [--sqs-records 5000]
                          [--rabbitmq-records 50000] [--activemq-records 20000]
                          [--kinesis-records 20000] [--dynamodb-records 10000]

Needs the `bench` extra (FastStream, confluent-kafka); servers come from tests/servers.
Each consumer runs in a process of its own (tests/bench/consumers.py) on a consumer group
of its own, reading the same prefilled stream or topic (4 partitions) from its start (a
queue source fills a fresh queue alike for each run: tests/bench/sources.py); rounds
alternate the
order of the contenders. Prints, per source, the median over rounds of records/s, CPU
seconds per 100k records and peak RSS, and the median of each round's esm/contender
records/s ratio. Kafka runs twice: broker defaults, and `group.coordinator.append.linger.ms
=0` (cheap commits, as older brokers and Redpanda). The machine may be shared: compare the
lines of one run, not runs.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import orjson

from tests.bench import sources
from tests.bench.contenders import CONTENDERS as MORE_CONTENDERS

CONTENDERS = {"redis": ("esm", "raw", "faststream"),
              "kafka": ("esm", "raw", "confluent", "faststream")}
LINGER_0 = {"group.coordinator.append.linger.ms": "0"}


@contextmanager
def redis_source(count: int) -> Iterator[tuple[str, str]]:
    import redis

    from tests.bench.bench_redis import produce
    from tests.servers.redis_server import RedisServer
    server = RedisServer(appendfsync="everysec")
    server.start()
    try:
        client, stream = redis.Redis.from_url(server.url), f"bench-{uuid.uuid4().hex[:6]}"
        produce(client, stream, count)
        client.close()
        yield server.url, stream
    finally:
        server.cleanup()


def kafka_source(properties: dict[str, str] | None) -> Callable[[int], Iterator[tuple[str, str]]]:
    @contextmanager
    def source(count: int) -> Iterator[tuple[str, str]]:
        from tests.bench.bench_kafka import bench_broker, fill
        with bench_broker(properties) as server:
            yield server.bootstrap, fill(server, count)
    return source


SOURCES = {"redis": ("redis", redis_source),
           "kafka": ("kafka", kafka_source(None)),
           "kafka-linger0": ("kafka", kafka_source(LINGER_0))}

# -- the queue and shard sources (tests/bench/sources.py, tests/bench/contenders.py) ------
CONTENDERS.update(MORE_CONTENDERS)
SOURCES.update({"sqs": ("sqs", sources.sqs_source),
                "rabbitmq": ("rabbitmq", sources.rabbitmq_source),
                "activemq": ("activemq", sources.activemq_source),
                "kinesis": ("kinesis", sources.kinesis_source),
                "dynamodb": ("dynamodb", sources.dynamodb_source)})
RECORDS = {"sqs": 5_000, "rabbitmq": 50_000, "activemq": 20_000, "kinesis": 20_000,
           "dynamodb": 10_000}


def fresh(key: sources.Key) -> str:
    """The key a contender reads: a queue source makes a freshly filled queue per run."""
    return key() if callable(key) else key


def consume(contender: str, kind: str, address: str, key: str, count: int,
            batch: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-m", "tests.bench.consumers", contender, kind,
                          address, key, str(count), str(batch)],
                         capture_output=True, text=True, timeout=1200, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{contender} on {kind} failed:\n{out.stderr[-3000:]}")
    lines = [line for line in out.stdout.splitlines() if line.startswith("FIGURES ")]
    if not lines:
        raise RuntimeError(f"{contender} on {kind} printed no figures:\n{out.stdout[-3000:]}")
    figures: dict[str, float] = orjson.loads(lines[-1].removeprefix("FIGURES "))
    return figures


def table(name: str, count: int, rounds: list[dict[str, dict[str, float]]]) -> list[str]:
    lines = [f"{name}, {count:,} records, {len(rounds)} rounds (medians):"]
    for contender in rounds[0]:
        runs = [r[contender] for r in rounds]
        rate = statistics.median(count / r["seconds"] for r in runs)
        cpu = statistics.median(r["cpu"] / count * 100_000 for r in runs)
        rss = statistics.median(r["rss_kib"] / 1024 for r in runs)
        line = (f"  {contender:<10} {rate:>9,.0f} rec/s  {cpu:5.2f} CPU-s/100k  "
                f"{rss:5.0f} MiB peak RSS")
        if contender != "esm":
            ratio = statistics.median(r[contender]["seconds"] / r["esm"]["seconds"]
                                      for r in rounds)
            line += f"  esm/{contender} {ratio:.2f}x"
        lines.append(line)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-records", type=int, default=100_000)
    parser.add_argument("--kafka-records", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=100)
    for kind, records in RECORDS.items():
        parser.add_argument(f"--{kind}-records", type=int, default=records)
    parser.add_argument("--only", choices=tuple(SOURCES), action="append")
    args = parser.parse_args()
    started = time.perf_counter()
    for name in args.only or list(SOURCES):
        kind, source = SOURCES[name]
        count = getattr(args, f"{kind}_records")
        rounds: list[dict[str, dict[str, float]]] = []
        with source(count) as (address, key):
            contenders = CONTENDERS[kind]
            for n in range(args.rounds):
                first = n % len(contenders)  # each leads in turn
                order = contenders[first:] + contenders[:first]
                figures = {c: consume(c, kind, address, fresh(key), count, args.batch)
                           for c in order}
                rounds.append({c: figures[c] for c in contenders})
        print("\n".join(table(name, count, rounds)), flush=True)
    print(f"total {time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
