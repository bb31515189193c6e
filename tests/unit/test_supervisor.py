"""The supervisor restarts a crashed reader with backoff, and the restarted reader resumes
from the committed position: nothing lost (DESIGN §2, STYLE rule 6)."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

from connectors.memory.source import MemoryBroker, MemorySettings, MemorySource
from esm.clock import SystemClock
from esm.config.loading import load_config
from esm.errors import SourceUnavailable
from esm.records import Record
from esm.runtime.daemon import Daemon

_seen: list[int] = []
_lock = threading.Lock()


def handler(event: dict[str, Any], context: Any) -> None:
    with _lock:
        _seen.extend(json.loads(r["body"])["id"] for r in event["Records"])


class CrashingSource(MemorySource):
    """Fails the first poll of its first `crashes` instances, like a broker going away."""

    instances = 0
    crashes = 2

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        type(self).instances += 1
        self._fail = type(self).instances <= self.crashes

    def poll(self, max_records: int, timeout_seconds: float) -> Sequence[Record]:
        if self._fail:
            self._fail = False
            raise SourceUnavailable("broker went away")
        return super().poll(max_records, timeout_seconds)


CONFIG = """
mappings:
  - name: flaky
    source: {type: memory}
    batch_size: 2
    target: {type: python, handler: "tests.unit.test_supervisor:handler"}
server: {enabled: false}
shutdown_timeout_seconds: 5
"""


def test_crashed_reader_is_restarted_with_backoff_and_resumes_where_it_committed(tmp_path):
    # Given a source that fails twice before it works, and 6 records in its broker
    _seen.clear()
    path = tmp_path / "esm.yaml"
    path.write_text(CONFIG)
    config = load_config([str(path)], {})
    clock = SystemClock()
    broker = MemoryBroker("stream", clock)
    for n in range(6):
        broker.put({"id": n})

    def build(context: Any) -> CrashingSource:
        return CrashingSource(MemorySettings(), context, broker)

    daemon = Daemon(config, clock=clock, source_overrides={"flaky": build},
                    reader_options={"lag_interval_seconds": 0.05, "idle_poll_seconds": 0.05})
    # When the daemon runs until idle
    daemon.start()
    try:
        assert daemon.run_until_idle(timeout_seconds=30), "mapping never settled"
    finally:
        daemon.shutdown()
    # Then the reader was restarted twice and every record was processed exactly once
    metrics = daemon.metrics.for_mapping("flaky")
    assert metrics.value("reader_restarts") == 2
    assert CrashingSource.instances == 3
    assert sorted(_seen) == list(range(6))
    assert broker.committed("lane-0") == 6
    status = daemon.statuses["flaky"].snapshot()
    assert status["readerRestarts"] == 2
    assert status["lastProcessingResult"] == "OK"
