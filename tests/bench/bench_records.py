"""Per-record cost of building Records from broker replies, with no broker: Kafka's
`to_record` and Redis's `EntryDecoder.new_entries`, with and without a filter view.

    python -m tests.bench.bench_records

Prints the median µs per record of several rounds (the machine is shared: compare lines of
one run, not runs).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from connectors.kafka.event import to_record
from connectors.redis.entries import EntryDecoder
from tests.unit.kafka.fake_messages import Msg

N = 100
ROUNDS = 7


def kafka_messages() -> list[Any]:
    return [Msg(1000 + i, topic="bench", partition=i % 4, timestamp=1_700_000_000_000 + i,
                key=b"k%d" % i, value=b'{"amount": %d, "id": "abc%d"}' % (i, i))
            for i in range(N)]


def redis_entries() -> list[Any]:
    return [(f"17000000000{i:02d}-0", ["type", "order", "body",
                                         f'{{"amount": {i}, "id": "abc{i}"}}'])
            for i in range(N)]


def per_record_us(work: Callable[[], object], loops: int = 500) -> float:
    rounds = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for _ in range(loops):
            work()
        rounds.append((time.perf_counter() - started) / loops / N * 1e6)
    return statistics.median(rounds)


def main() -> None:
    messages, entries = kafka_messages(), redis_entries()
    for views in (True, False):
        decoder = EntryDecoder("redis://127.0.0.1:6379/0", ["s"], "g", "body",
                               filter_views=views)
        kafka = per_record_us(lambda: [to_record(m, 0.0, views) for m in messages])  # noqa: B023
        redis = per_record_us(lambda: decoder.new_entries("s", entries, None))  # noqa: B023
        label = "filter view" if views else "no filter  "
        print(f"{label}: kafka to_record {kafka:.2f} µs/record, "
              f"redis new_entries {redis:.2f} µs/record")


if __name__ == "__main__":
    main()
