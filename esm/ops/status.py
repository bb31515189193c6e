"""Live state of each mapping, as `/mappings` and `esm status` show it (ESM-SPEC §1.1):
State, StateTransitionReason, LastProcessingResult, plus esm's own counters.

Written by the mapping's runner, reader and lane workers; read by the HTTP server. Fields
are plain attributes updated under one lock; readers get a snapshot dict.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric

NO_RECORDS = "No records processed"
OK = "OK"
FUNCTION_FAILED = "PROBLEM: Function call failed"
INVOKE_FAILED = "PROBLEM: Function could not be invoked"
SOURCE_FAILED = "PROBLEM: Source unavailable"
DESTINATION_FAILED = "PROBLEM: On-failure destination unavailable"


@dataclass
class MappingStatus:
    name: str
    source_type: str
    target_type: str
    state: str = "Creating"
    state_transition_reason: str = "USER_INITIATED"
    last_processing_result: str = NO_RECORDS
    last_error: str | None = None
    in_flight_batches: int = 0
    outstanding_records: int = 0
    buffered_records: int = 0
    lanes: int = 0
    paused_lanes: int = 0
    lag: float | None = None
    reader_restarts: int = 0
    ready: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def update(self, **changes: Any) -> None:
        with self._lock:
            for key, value in changes.items():
                setattr(self, key, value)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "name": self.name,
                "source": self.source_type,
                "target": self.target_type,
                "state": self.state,
                "stateTransitionReason": self.state_transition_reason,
                "lastProcessingResult": self.last_processing_result,
                "lastError": self.last_error,
                "ready": self.ready,
                "inFlightBatches": self.in_flight_batches,
                "outstandingRecords": self.outstanding_records,
                "bufferedRecords": self.buffered_records,
                "lanes": self.lanes,
                "pausedLanes": self.paused_lanes,
                "lag": self.lag,
                "readerRestarts": self.reader_restarts,
            }


# States in which a mapping is meant to be reading (ESM-SPEC §1.1), and esm's own `Paused`:
# enabled, but its circuit breaker holds the reads while the target is unreachable.
RUNNING_STATES = ("Creating", "Enabling", "Enabled", "Updating", "Paused")
STATES = ("Creating", "Enabling", "Enabled", "Disabling", "Disabled", "Updating", "Deleting",
          "Paused")


class StatusCollector:
    """Exports mapping states as Prometheus gauges, read at scrape time:
    `esm_mapping_enabled` (1 while the mapping is meant to run), `esm_mapping_ready`
    (1 while its reader is polling) and `esm_mapping_state{state=...}` (1 for the current
    state), so alerts can tell a disabled mapping from a broken one."""

    def __init__(self, snapshots: Callable[[], list[dict[str, Any]]]) -> None:
        self._snapshots = snapshots

    def collect(self) -> Iterator[Metric]:
        enabled = GaugeMetricFamily("esm_mapping_enabled",
                                    "1 while the mapping is meant to run.", labels=["mapping"])
        ready = GaugeMetricFamily("esm_mapping_ready", "1 while the mapping's reader polls.",
                                  labels=["mapping"])
        state = GaugeMetricFamily("esm_mapping_state", "1 for the mapping's current state.",
                                  labels=["mapping", "state"])
        for snap in self._snapshots():
            name = snap["name"]
            enabled.add_metric([name], 1.0 if snap["state"] in RUNNING_STATES else 0.0)
            ready.add_metric([name], 1.0 if snap["ready"] else 0.0)
            for value in STATES:
                state.add_metric([name, value], 1.0 if snap["state"] == value else 0.0)
        yield from (enabled, ready, state)
