"""Watching a benchmark daemon's progress without slowing it down."""

from __future__ import annotations

import time

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
