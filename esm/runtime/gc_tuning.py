"""Garbage-collector settings for a long-running daemon.

Why: each record read allocates a handful of dicts (payload, fields, filter view) that live
until their batch is invoked, so they outlive the youngest generation and keep the cyclic
collector busy: at CPython's default thresholds (700, 10, 10) its collections cost ~15% of
the CPU per record (bench_redis, alternating runs: 11.6 -> 9.7 us per record with these
settings). The hot path makes no reference cycles; reference counting frees records as
soon as they are acked, so collecting less often costs little memory.

- `gc.freeze()` once the daemon is built: the modules, config and connectors loaded at
  start are never garbage, and full collections no longer walk them.
- A youngest-generation threshold of 20,000 allocations instead of 700, and older
  generations collected 50 times less often than the one before.
"""

from __future__ import annotations

import gc

THRESHOLDS = (20_000, 50, 50)


def tune_for_throughput() -> None:
    """Freeze what exists now and raise the collection thresholds; idempotent."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
