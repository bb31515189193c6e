"""`esm run` against a real redis-server: the circuit breaker with a real HTTP target that
is down for 10 s, and the lag metrics checked against Redis's own count.

Circuit breaker: the target answers 503 for the first 10 s. The breaker opens after 3
consecutive invoke errors; while open the mapping is `Paused` with the reason, the reader
sends no XREADGROUP (counted by Redis itself, INFO commandstats), the target sees one
probe every `probe_interval_seconds`; when the target is back the mapping resumes, every
entry is delivered and acked, and none is dead-lettered although `max_deliveries` is 2.

Lag: while a slow handler holds the first batches, `esm_sum_offset_lag`,
`esm_max_offset_lag` and `esm_lane_offset_lag{lane}` equal XINFO GROUPS lag + pending per
stream, and `esm_oldest_record_age_seconds` is the age of the entries held.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.integration.e2e_support import (
    DaemonProcess,
    daemon_env,
    python_target,
    run_cli,
    wait_until,
    write_config,
)
from tests.servers.http_server import HttpServer, Reply, http_server
from tests.servers.redis_server import RedisServer, redis_server  # noqa: F401

pytestmark = pytest.mark.integration

DOWN_SECONDS = 10.0
PROBE_SECONDS = 2.0


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:  # noqa: F811
    c = redis.Redis.from_url(redis_server.url, decode_responses=True)
    yield c
    c.close()


def produce(client: redis.Redis, stream: str, count: int) -> list[str]:
    ids = [f"{stream}/{n}" for n in range(count)]
    for record_id in ids:
        client.xadd(stream, {"body": json.dumps({"id": record_id})})
    return ids


def redis_source(url: str, streams: list[str], group: str, **keys: Any) -> dict[str, Any]:
    return {"type": "redis_streams", "url": url, "streams": streams, "consumer_group": group,
            "visibility_timeout_seconds": 120, "block_milliseconds": 200, **keys}


def xreadgroup_calls(client: redis.Redis) -> int:
    return int(client.info("commandstats").get("cmdstat_xreadgroup", {}).get("calls", 0))


class FlakyTarget:
    """503 until `up_at` (time.monotonic()), then 200; remembers the ids it accepted."""

    def __init__(self) -> None:
        self.up_at = float("inf")
        self.accepted: list[str] = []
        self.lock = threading.Lock()

    def reply(self, path: str, headers: dict[str, str], body: bytes) -> Reply:
        if time.monotonic() < self.up_at:
            return Reply(503, b"down for maintenance")
        records = json.loads(body)["Records"]
        with self.lock:
            self.accepted += [json.loads(r["body"])["id"] for r in records]
        return Reply(body=b"{}")


@pytest.fixture
def flaky() -> Iterator[tuple[FlakyTarget, HttpServer]]:
    target = FlakyTarget()
    with http_server(target.reply) as server:
        yield target, server


def test_breaker_stops_reading_probes_and_resumes_without_losing_or_dead_lettering(
        tmp_path: Path, redis_server: RedisServer, client: redis.Redis,  # noqa: F811
        flaky: tuple[FlakyTarget, HttpServer]) -> None:
    target, server = flaky
    prefix = f"cb-{uuid.uuid4().hex[:8]}"
    streams, group, dlq = [f"{prefix}-a", f"{prefix}-b"], f"{prefix}-g", f"{prefix}-dlq"
    ids = produce(client, streams[0], 30) + produce(client, streams[1], 30)
    mapping = {
        "name": "guarded",
        "source": redis_source(redis_server.url, streams, group, max_deliveries=2),
        "batch_size": 5,
        "retry_backoff": {"initial_seconds": 0.1, "maximum_seconds": 0.5, "jitter": False},
        "circuit_breaker": {"failure_threshold": 3, "probe_interval_seconds": PROBE_SECONDS},
        "target": {"type": "http", "url": server.url("/invoke"), "timeout_seconds": 5},
        "destination_config": {"on_failure": {"type": "redis_stream", "url": redis_server.url,
                                              "stream": dlq}},
    }
    config = write_config(tmp_path, [mapping])
    with DaemonProcess(config, daemon_env(tmp_path / "journal"), tmp_path / "esm.log") as d:
        # Given the target is down for the first 10 s
        target.up_at = time.monotonic() + DOWN_SECONDS
        d.wait_ready()

        def status() -> dict[str, Any]:
            code, body = d.get("/mappings/guarded")
            assert code == 200, body
            return dict(json.loads(body))

        # When the breaker opens
        wait_until(lambda: status()["state"] == "Paused", DOWN_SECONDS - 4,
                   lambda: f"{status()}\n{d.log_tail()}")
        reason = status()["stateTransitionReason"]
        assert "3 consecutive invoke errors" in reason and "HTTP 503" in reason, reason
        assert d.metrics()["esm_circuit_open{mapping=guarded}"] == 1.0
        table = run_cli("status", "--url", f"http://127.0.0.1:{d.port}").stdout
        assert "Paused" in table and "circuit breaker open" in table, table
        # Then Redis serves no read while it is open, and the target sees only probes
        time.sleep(0.5)  # a read sent just before the pause may still be answered
        reads_before, window_start = xreadgroup_calls(client), time.monotonic()
        while time.monotonic() < min(window_start + 4.0, target.up_at - 0.2):
            time.sleep(0.1)
        reads_during, window_end = xreadgroup_calls(client) - reads_before, time.monotonic()
        probes = [r.at for r in server.received() if window_start <= r.at < window_end]
        print(f"\nbreaker open: {reads_during} XREADGROUP in {window_end - window_start:.1f}s,"
              f" probes at {[round(p - window_start, 2) for p in probes]}")
        assert reads_during == 0
        assert 1 <= len(probes) <= (window_end - window_start) / PROBE_SECONDS + 1
        assert all(b - a >= PROBE_SECONDS - 0.05 for a, b in pairwise(probes))
        # When the target is back, a probe succeeds and the mapping resumes
        wait_until(lambda: set(target.accepted) >= set(ids), 60,
                   lambda: f"{len(set(target.accepted))}/{len(ids)}\n{d.log_tail()}")
        wait_until(lambda: status()["state"] == "Enabled", 10, lambda: str(status()))
        wait_until(lambda: all(client.xpending(s, group)["pending"] == 0 for s in streams), 20,
                   lambda: str([client.xpending(s, group) for s in streams]))
        metrics = d.metrics()
    # Then nothing was lost or dead-lettered, and the breaker shows closed
    assert metrics["esm_circuit_open{mapping=guarded}"] == 0.0
    assert client.xlen(dlq) == 0  # 0 also when the stream was never created
    assert metrics.get("esm_on_failure_destination_delivered_events_total{mapping=guarded}",
                       0.0) == 0.0
    assert sorted(set(target.accepted)) == sorted(ids)


def test_lag_metrics_equal_redis_own_lag_per_stream(
        tmp_path: Path, redis_server: RedisServer, client: redis.Redis) -> None:  # noqa: F811
    # Given three streams holding 10, 25 and 40 entries and a handler that takes 60 s
    prefix = f"lag-{uuid.uuid4().hex[:8]}"
    streams, group = [f"{prefix}-{i}" for i in range(3)], f"{prefix}-g"
    for stream, count in zip(streams, (10, 25, 40), strict=True):
        produce(client, stream, count)
    produced_at = time.time()
    mapping = {
        "name": "lagging",
        "source": redis_source(redis_server.url, streams, group),
        "batch_size": 5,
        "lane_lag_metrics": True,
        "target": python_target(timeout_seconds=90),
    }
    config = write_config(tmp_path, [mapping])
    env = daemon_env(tmp_path / "journal.jsonl", sleep_seconds="60")
    with DaemonProcess(config, env, tmp_path / "esm.log") as d:
        d.wait_ready()
        # When the daemon has reported lag while the first batches are held
        wait_until(lambda: d.metrics().get("esm_sum_offset_lag{mapping=lagging}", 0) > 0, 30,
                   d.log_tail)
        time.sleep(5.5)  # one more report, made with the batches in flight
        metrics = d.metrics()
        broker = {}
        for stream in streams:
            [info] = [g for g in client.xinfo_groups(stream) if g["name"] == group]
            broker[stream] = float(info["lag"] + info["pending"])
        age = metrics["esm_oldest_record_age_seconds{mapping=lagging}"]
        elapsed = time.time() - produced_at
    # Then the metrics are Redis's own figures
    print(f"\nredis lag: broker {broker}, metrics sum "
          f"{metrics['esm_sum_offset_lag{mapping=lagging}']}, oldest age {age:.1f}s "
          f"(produced {elapsed:.1f}s ago)")
    assert broker == dict(zip(streams, (10.0, 25.0, 40.0), strict=True))
    assert metrics["esm_sum_offset_lag{mapping=lagging}"] == sum(broker.values())
    assert metrics["esm_max_offset_lag{mapping=lagging}"] == max(broker.values())
    assert metrics["esm_offset_lag{mapping=lagging}"] == sum(broker.values())
    for stream, value in broker.items():
        assert metrics[f"esm_lane_offset_lag{{lane={stream},mapping=lagging}}"] == value
    # And the oldest held entry's age is how long ago it was produced (reported <= 5 s ago)
    assert elapsed - 7.0 <= age <= elapsed
