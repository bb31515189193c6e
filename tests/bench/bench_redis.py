"""Benchmark: Redis Streams → no-op Python target, beside a raw redis-py loop.

Both loops drain the same number of entries from a fresh stream on a private redis-server:
- raw: XREADGROUP COUNT n + XACK of every entry, nothing else (the ceiling);
- esm: RedisStreamsSource.poll + the compiled filter on each record's view + build_event +
  JSON encoding of the event + a no-op handler + ack (what a reader and a lane worker do
  per record, minus thread hand-offs).
One in ten records is filtered out (still acked, as the core does). Prints records/s for
both and the ratio (target ≥ 60%, for the whole daemon), then the effect of batch size.
No timing asserts: run it, read the figures.

    python3 -m tests.bench.bench_redis [--records 50000] [--batch 100] [--rounds 5]
"""

from __future__ import annotations

import argparse
import threading
import time
import uuid
from collections.abc import Collection
from statistics import median_high
from typing import Any

import orjson
import redis

from connectors.redis.settings import RedisStreamsSettings
from connectors.redis.source import RedisStreamsSource
from esm.clock import SystemClock
from esm.interfaces import ConnectorContext
from tests.bench.progress import wait_for_count
from tests.servers.redis_server import RedisServer

PATTERN = '{"body": {"type": ["order"]}}'


class _Listener:
    def lanes_assigned(self, lanes: Collection[str]) -> None:
        pass

    def lanes_revoked(self, lanes: Collection[str]) -> None:
        pass


def produce(client: redis.Redis, stream: str, count: int) -> None:
    """`count` entries, one in ten of a type the filter rejects."""
    for start in range(0, count, 1000):
        pipe = client.pipeline(transaction=False)
        for n in range(start, min(count, start + 1000)):
            kind = "ping" if n % 10 == 9 else "order"
            pipe.xadd(stream, {"body": orjson.dumps({"type": kind, "id": n, "amount": n % 97}),
                               "source": "bench"})
        pipe.execute()


def raw_loop(client: redis.Redis, stream: str, count: int, batch: int) -> float:
    """Records/s of a bare XREADGROUP + XACK loop."""
    client.xgroup_create(stream, "raw", id="0")
    done = 0
    started = time.perf_counter()
    while done < count:
        reply: Any = client.xreadgroup("raw", "raw-1", {stream: ">"}, count=batch, block=100)
        for _, entries in reply or ():
            client.xack(stream, "raw", *[entry_id for entry_id, _ in entries])
            done += len(entries)
    return count / (time.perf_counter() - started)


def _noop_handler(event: dict[str, Any], context: object) -> None:
    return None


def esm_loop(url: str, stream: str, count: int, batch: int) -> float:
    """Records/s through the Source with filtering, event building and a no-op target."""
    from esm.filtering import compile_filters  # imported here: written alongside this bench

    matcher = compile_filters([PATTERN])
    settings = RedisStreamsSettings(streams=(stream,), url=url, consumer_group="esm-bench",
                                    block_milliseconds=100)
    source = RedisStreamsSource(settings, ConnectorContext("bench", threading.Event(),
                                                           SystemClock()))
    source.open(_Listener())
    done = 0
    started = time.perf_counter()
    while done < count:
        records = source.poll(batch, 0.2)
        matched = [r for r in records
                   if matcher.matches(r.filter_view if r.filter_view is not None
                                      else r.payload)]  # type: ignore[arg-type]
        if matched:
            # The core encodes the event once (Event.body); the python target hands the
            # handler a decoded copy, so both costs are counted.
            body = orjson.dumps(source.build_event(matched))
            _noop_handler(orjson.loads(body), None)
        source.ack(records)
        done += len(records)
    rate = count / (time.perf_counter() - started)
    source.close()
    return rate


DAEMON_CONFIG = """
mappings:
  - name: bench
    source: {{type: redis_streams, url: "{url}", streams: [{stream}], consumer_group: esm-daemon,
             block_milliseconds: 100}}
    filter_criteria: {{filters: [{{pattern: '{pattern}'}}]}}
    batch_size: {batch}
    maximum_batching_window_in_seconds: 1
    target: {{type: python, handler: "tests.bench.bench_redis:_noop_handler", timeout_seconds: 10}}
server: {{enabled: false}}
"""


def daemon_loop(url: str, stream: str, count: int, batch: int) -> float:
    """Records/s of the whole daemon (reader, lane workers, python target), from the
    moment it is started (its reader opening the source) until every entry is acked
    (delivered or filtered out)."""
    import tempfile
    from pathlib import Path

    from esm.config.loading import load_config
    from esm.runtime.daemon import Daemon

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(DAEMON_CONFIG.format(url=url, stream=stream, pattern=PATTERN,
                                             batch=batch))
        daemon = Daemon(load_config([str(path)], {}))
    daemon.start()  # builds the mapping (~15 ms), then the clock runs: steady throughput
    started = time.perf_counter()
    done = wait_for_count(daemon, "deleted", count, timeout_seconds=600)
    rate = count / (time.perf_counter() - started)
    daemon.shutdown()
    assert done >= count, f"only {done} of {count} entries acked"
    return rate


def _round(client: redis.Redis, url: str, records: int, batch: int,
           with_source_loop: bool) -> tuple[float, float | None, float]:
    """One round on fresh streams: raw, (source loop), whole daemon records/s."""
    raw_stream, esm_stream, daemon_stream = (
        f"bench-{kind}-{uuid.uuid4().hex[:6]}" for kind in "red")
    for stream in (raw_stream, esm_stream, daemon_stream):
        produce(client, stream, records)
    raw = raw_loop(client, raw_stream, records, batch)
    esm = esm_loop(url, esm_stream, records, batch) if with_source_loop else None
    daemon = daemon_loop(url, daemon_stream, records, batch)
    client.delete(raw_stream, esm_stream, daemon_stream)
    return raw, esm, daemon


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    server = RedisServer(appendfsync="everysec")  # "always" would time fsync, not esm
    server.start()
    try:
        client = redis.Redis.from_url(server.url)
        rounds = [_round(client, server.url, args.records, args.batch, True)
                  for _ in range(args.rounds)]  # each round alternates the three loops
        whole = [d / r for r, _, d in rounds]
        source = [e / r for r, e, _ in rounds if e is not None]
        print(f"{args.records} entries per loop, batch {args.batch}, {args.rounds} rounds; "
              f"ratios are per round, to the raw loop of the same round")
        print(f"raw XREADGROUP+XACK       : {median_high([r for r, _, _ in rounds]):9,.0f} "
              f"records/s (median)")
        print(f"whole daemon (reader, lane workers, python target): "
              f"{median_high([d for _, _, d in rounds]):9,.0f} records/s, ratio median "
              f"{median_high(whole):.0%} (rounds: {', '.join(f'{r:.0%}' for r in whole)}; "
              f"target >= 60%)")
        print(f"source loop only (poll, filter, event, handler, ack on one thread): ratio "
              f"median {median_high(source):.0%}")
        print("batch size effect (one round each, raw reads the same COUNT):")
        for batch in (10, 100, 500):
            raw, _, daemon = _round(client, server.url, args.records, batch, False)
            print(f"  batch {batch:>4}: raw {raw:9,.0f}  daemon {daemon:9,.0f} records/s  "
                  f"ratio {daemon / raw:.0%}")
        client.close()
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
