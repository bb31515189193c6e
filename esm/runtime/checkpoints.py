"""The daemon's in-process CheckpointStore: lane positions that outlive a source instance
(reader restarts, disable/enable, reloads) for the lifetime of the daemon process.

Sources with durable positions of their own (Kafka offsets, Redis groups, DynamoDB leases)
ignore it; the memory source uses it so that a restarted reader resumes where the last
one committed instead of replaying its configured records.
"""

from __future__ import annotations

import threading


class InProcessCheckpoints:
    """Thread-safe positions keyed by (mapping, lane)."""

    def __init__(self) -> None:
        self._positions: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def load(self, mapping: str, lane: str) -> str | None:
        with self._lock:
            return self._positions.get((mapping, lane))

    def save(self, mapping: str, lane: str, position: str) -> None:
        with self._lock:
            self._positions[(mapping, lane)] = position
