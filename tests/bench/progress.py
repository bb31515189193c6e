"""Watching a benchmark daemon's progress without slowing it down."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from esm.config.loading import load_config
from esm.runtime.daemon import Daemon


def wait_for_count(daemon: Daemon, key: str, count: float, timeout_seconds: float,
                   mapping: str = "bench") -> float:
    """Poll the mapping's `key` counter (e.g. "deleted", "committed") every 2 ms until it
    reaches `count` or the timeout passes; return its last value.

    Why not `registry.get_sample_value`: that collects every metric of the registry, about
    0.6 ms of the daemon's GIL per call; polled every few ms it took ~10% of the process."""
    counter = daemon.metrics.for_mapping(mapping)
    deadline = time.perf_counter() + timeout_seconds
    value = counter.value(key)
    while value < count and time.perf_counter() < deadline:
        time.sleep(0.002)
        value = counter.value(key)
    return value


def timed_daemon(config_text: str, key: str, count: int) -> tuple[float, float]:
    """Run a daemon on `config_text` (one mapping named `bench`) until its `key` counter
    reaches `count`; return records/s from start, and steady records/s (from the first
    tenth of `count` on: without starting up and joining a group)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(config_text)
        config = load_config([str(path)], {})
    daemon = Daemon(config)
    start = time.perf_counter()
    daemon.start()
    tenth = wait_for_count(daemon, key, count // 10, timeout_seconds=600)
    steady_start = time.perf_counter()
    done = wait_for_count(daemon, key, count, timeout_seconds=600)
    end = time.perf_counter()
    daemon.shutdown()
    assert done == count, f"only {done} of {count} records {key}"
    return count / (end - start), (done - tenth) / (end - steady_start)
