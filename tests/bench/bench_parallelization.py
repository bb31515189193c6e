"""Benchmark: records/s of one Kafka partition through the daemon at parallelization_factor
1, 2, 5 and 10, with a target that takes 20 ms per batch.

Run: `python3 -m tests.bench.bench_parallelization [records]`. Starts its own broker
(tests/servers), writes the records once to a fresh 1-partition topic, keys spread over
1,000 values, and runs the daemon once per factor (a new consumer group each time, so each
run reads everything), from start until every record is committed, and steady (from the
first tenth committed on, leaving out joining the group). Batch size 10, no
batching window: the handler's 20 ms dominates, so a factor-1 partition runs about
500 records/s and factor F should come close to F times that, or rather to what the keys
allow: records come in partition order, so the slot holding the largest share of them sets
the pace (printed beside each figure). Prints figures, no asserts.
"""

from __future__ import annotations

import base64
import sys
import time
import uuid
from collections import Counter

from kafka import KafkaProducer

from esm.pipeline.lane_buffer import key_slot
from tests.bench.bench_kafka import CONFIG, bench_broker
from tests.bench.progress import timed_daemon
from tests.contract.test_kafka_source import make_topic
from tests.servers.kafka_server import KafkaServer

BATCH_SIZE = 10
HANDLER_SECONDS = 0.02
KEYS = 1000
HANDLER = "tests.bench.bench_parallelization:slow"


def slow(event: dict[str, object], context: object) -> None:
    """The daemon's target: a Lambda-style handler taking 20 ms per batch."""
    time.sleep(HANDLER_SECONDS)




def fill(server: KafkaServer, count: int) -> str:
    topic = make_topic(server, 1)
    producer = KafkaProducer(bootstrap_servers=server.bootstrap, linger_ms=20)
    for n in range(count):
        producer.send(topic, key=f"k{n % KEYS}".encode(), value=b'{"n": %d}' % n, partition=0)
    producer.flush(120)
    producer.close()
    return topic


def daemon_rate(server: KafkaServer, topic: str, count: int, factor: int
                ) -> tuple[float, float]:
    """records/s of the whole daemon until every record is committed: from start, and
    steady (from the first tenth on, without joining the group)."""
    config = CONFIG.format(bootstrap=server.bootstrap, topic=topic,
                           group=f"esm-{uuid.uuid4().hex}", batch_size=BATCH_SIZE, window=0)
    config = config.replace("tests.bench.bench_kafka:noop", HANDLER).replace(
        "    target:", f"    parallelization_factor: {factor}\n    target:")
    return timed_daemon(config, "committed", count)


def best_speedup(factor: int) -> float:
    """The speed-up the keys allow: records are read in partition order, so the slot that
    holds the largest share of the records sets the pace (1 / that share)."""
    slots = Counter(key_slot(base64.b64encode(f"k{n}".encode()).decode(), factor)
                    for n in range(KEYS))
    return KEYS / max(slots.values())


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    with bench_broker() as server:
        topic = fill(server, count)
        print(f"{count} records, 1 partition, {KEYS} keys, batch_size={BATCH_SIZE}, "
              f"handler {HANDLER_SECONDS * 1000:.0f} ms per batch")
        base = 0.0
        for factor in (1, 2, 5, 10):
            rate, steady = daemon_rate(server, topic, count, factor)
            base = base or steady
            print(f"parallelization_factor={factor:<3} {rate:>8,.0f} records/s from start, "
                  f"{steady:>8,.0f} steady  x{steady / base:.2f} of factor 1 "
                  f"(the keys' slot shares allow x{best_speedup(factor):.2f})")


if __name__ == "__main__":
    main()
