"""Pipeline benchmark: memory-style source → filter → batches → no-op Python target.

Prints, per batch size (1, 10, 100, 1000): records/s, CPU µs per record (process CPU time,
all threads), and the ratio to a raw loop that only builds the same records and events.
Then RSS before and after pushing 1,000,000 records through batch size 1000, to show memory
is bounded by configuration and not by how many records passed through.
Run: python3 tests/bench/bench_pipeline.py [--records N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from esm.config.loading import load_config  # noqa: E402
from esm.interfaces import ConnectorContext, LaneListener, SourceTraits  # noqa: E402
from esm.records import Record  # noqa: E402
from esm.runtime.daemon import Daemon  # noqa: E402


def noop(event: dict[str, Any], context: Any) -> None:
    """The target: an unmodified-Lambda-style handler that does nothing."""


class CountingSource:
    """Synthesises `total` records on demand (nothing is kept once acked), 4 lanes."""

    traits: ClassVar[SourceTraits] = SourceTraits(family="stream", window_required_above_10=False)

    def __init__(self, total: int, context: ConnectorContext) -> None:
        self.total = total
        self.made = 0
        self.acked = 0
        self.context = context
        self._arn = f"memory://{context.mapping}"

    def open(self, listener: LaneListener) -> None:
        listener.lanes_assigned([f"lane-{i}" for i in range(4)])

    def poll(self, max_records: int, timeout_seconds: float) -> Sequence[Record]:
        count = min(max_records, self.total - self.made)
        if count <= 0:
            time.sleep(min(timeout_seconds, 0.01))
            return []
        now = time.time()
        out = [make_record(self.made + i, self._arn, now) for i in range(count)]
        self.made += count
        return out

    def ack(self, records: Sequence[Record]) -> None:
        self.acked += len(records)

    def release(self, records: Sequence[Record], delay_seconds: float) -> None:
        pass

    def pause(self, lanes: Collection[str]) -> None:
        pass

    def resume(self, lanes: Collection[str]) -> None:
        pass

    def build_event(self, records: Sequence[Record]) -> dict[str, Any]:
        return {"Records": [r.payload for r in records]}

    def event_overhead_bytes(self) -> int:
        return 14

    def item_identifier(self, value: object) -> str | None:
        return value if isinstance(value, str) and value else None

    def batch_info(self, records: Sequence[Record]) -> dict[str, Any]:
        return {"batchSize": len(records)}

    def lag(self) -> Mapping[str, float]:
        return {"all": float(self.total - self.acked)}

    def close(self) -> None:
        pass


def make_record(n: int, arn: str, now: float) -> Record:
    lane = f"lane-{n % 4}"
    body = f'{{"type": "order", "id": {n}, "amount": {n % 1000}}}'
    payload = {"eventSource": "esm:memory", "eventSourceARN": arn, "lane": lane,
               "sequenceNumber": str(n), "messageId": f"{lane}:{n}", "body": body,
               "attributes": {"deliveryCount": "1", "timestamp": str(int(now * 1000))}}
    view = dict(payload, body=orjson.loads(body))
    return Record(lane, str(n), payload["messageId"], payload, len(orjson.dumps(payload)), now,
                  view)


CONFIG = """
mappings:
  - name: bench
    source: {{type: memory}}
    filter_criteria: {{filters: [{{pattern: '{{"body": {{"type": ["order"]}}}}'}}]}}
    batch_size: {batch_size}
    maximum_batching_window_in_seconds: 0
    target: {{type: python, handler: "tests.bench.bench_pipeline:noop", timeout_seconds: 60}}
server: {{enabled: false}}
"""


def run_pipeline(batch_size: int, total: int) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) to push `total` records through the daemon."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(CONFIG.format(batch_size=batch_size))
        config = load_config([str(path)], {})
    sources: list[CountingSource] = []

    def build(context: ConnectorContext) -> CountingSource:
        sources.append(CountingSource(total, context))
        return sources[-1]

    daemon = Daemon(config, source_overrides={"bench": build},
                    reader_options={"lag_interval_seconds": 0.05})
    wall, cpu = time.perf_counter(), time.process_time()
    daemon.start()
    finished = _wait_until_all_acked(sources, total, timeout_seconds=600)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    daemon.shutdown()
    assert finished and sources[0].acked == total, (finished, sources[0].acked)
    return wall, cpu


def _wait_until_all_acked(sources: list[CountingSource], total: int,
                          timeout_seconds: float) -> bool:
    """Stop the clock when the last record is acked. (`Daemon.run_until_idle` would add
    up to one idle poll, ~1 s, of waiting after the work is done.)"""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if sources and sources[0].acked >= total:
            return True
        time.sleep(0.001)
    return False


def raw_loop(batch_size: int, total: int) -> float:
    """The floor: make the same records and encode the same events, no daemon."""
    started = time.perf_counter()
    arn, now, made = "memory://raw", time.time(), 0
    while made < total:
        count = min(batch_size, total - made)
        records = [make_record(made + i, arn, now) for i in range(count)]
        orjson.dumps({"Records": [r.payload for r in records]})
        made += count
    return time.perf_counter() - started


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rss-records", type=int, default=1_000_000)
    args = parser.parse_args()
    print(f"esm pipeline benchmark, {os.cpu_count()} cores, records per run: {args.records}")
    print(f"{'batch':>6} {'records/s':>12} {'CPU µs/rec':>11} {'raw rec/s':>12} {'ratio':>6}")
    for batch_size in (1, 10, 100, 1000):
        total = args.records if batch_size > 1 else min(args.records, 20_000)
        wall, cpu = run_pipeline(batch_size, total)
        raw = raw_loop(batch_size, total)
        print(f"{batch_size:>6} {total / wall:>12,.0f} {cpu / total * 1e6:>11.1f} "
              f"{total / raw:>12,.0f} {raw / wall:>6.2f}")
    before = rss_mib()
    wall, _ = run_pipeline(1000, args.rss_records)
    after = rss_mib()
    print(f"RSS before {before:.1f} MiB, after {args.rss_records:,} records {after:.1f} MiB "
          f"(+{after - before:.1f} MiB), {args.rss_records / wall:,.0f} records/s")


if __name__ == "__main__":
    main()
