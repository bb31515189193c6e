# ruff: noqa: F811  (pytest fixtures are imported by name, then requested by name)
"""`esm run` with tumbling windows against moto's Kinesis server, killed -9 mid-window and
restarted (ESM-SPEC §2.5). The handler is a Powertools-style aggregation
(tests/integration/window_handlers) that keeps the sequence numbers it folded into its
state, so the final invokes tell the whole story:
- no window lost: every record is in the state of some window's final invoke;
- nothing folded twice: no state holds a record twice (the window document is saved on
  the lease before the checkpoint moves, and records already in a saved state are skipped
  when they come again);
- a window is finalised twice only if its final was in flight at the kill: at most one.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.integration.e2e_support import DaemonProcess, daemon_env, wait_until, write_config
from tests.integration.handlers import read_journal
from tests.servers.moto_server import MotoServer, moto_server  # noqa: F401

pytestmark = pytest.mark.integration

RECORDS = 240
WINDOW_SECONDS = 2


def mapping(server: MotoServer, stream: str, tmp_path: Path) -> dict[str, Any]:
    return {
        "name": "kinesis-windows",
        "source": {"type": "kinesis", "stream_name": stream, "starting_position": "TRIM_HORIZON",
                   "endpoint_url": server.endpoint_url, "region": "us-east-1",
                   "poll_interval_seconds": 0.2,
                   "checkpoint": {"type": "sqlite", "path": str(tmp_path / "cp.sqlite"),
                                  "lease_duration_seconds": 2}},
        "batch_size": 10, "maximum_batching_window_in_seconds": 0,
        "tumbling_window_in_seconds": WINDOW_SECONDS,
        "retry_backoff": {"initial_seconds": 0.05, "maximum_seconds": 0.2},
        "target": {"type": "python", "handler": "tests.integration.window_handlers:aggregate",
                   "timeout_seconds": 10},
    }


def produce(server: MotoServer, stream: str, sequences: list[str]) -> None:
    """RECORDS records over about 8 s (several windows), keys k0..k4."""
    kinesis = server.client("kinesis")
    for n in range(RECORDS):
        answer = kinesis.put_record(StreamName=stream, Data=f'{{"n": {n}}}'.encode(),
                                    PartitionKey=f"k{n % 5}")
        sequences.append(answer["SequenceNumber"])
        time.sleep(8 / RECORDS)


def finals(journal: Path) -> list[dict[str, Any]]:
    return [line for line in read_journal(journal) if line["kind"] == "final"]


def test_kill_9_mid_window_loses_no_window_and_folds_no_record_twice(
        moto_server: MotoServer, tmp_path: Path) -> None:
    # Given a stream written to for about 8 s, windows of 2 s, and a daemon reading it
    stream, _ = moto_server.create_kinesis_stream()
    sequences: list[str] = []
    producer = threading.Thread(target=produce, args=(moto_server, stream, sequences))
    config = write_config(tmp_path, [mapping(moto_server, stream, tmp_path)])
    journal, log = tmp_path / "journal.jsonl", tmp_path / "daemon.log"
    env = daemon_env(journal)
    producer.start()
    try:
        with DaemonProcess(config, env, log) as daemon:
            daemon.wait_ready()
            # When it is killed -9 once a window was finalised and others are open
            wait_until(lambda: finals(journal) and len(read_journal(journal)) > 12, 60,
                       daemon.log_tail)
            daemon.kill()
        killed_after = len(finals(journal))
        # And started again (it waits for the dead daemon's lease to expire)
        with DaemonProcess(config, env, log) as daemon:
            daemon.wait_ready()
            producer.join(60)
            wait_until(lambda: all_folded(journal, sequences), 60,
                       lambda: f"{missing(journal, sequences)}\n{daemon.log_tail()}")
            daemon.terminate()
            assert daemon.wait_exit(30) == 0, daemon.log_tail()
    finally:
        producer.join(60)
    # Then every record is in a final state, none twice in one state, and at most one
    # window (the one in flight at the kill) was finalised twice
    done = finals(journal)
    assert 0 < killed_after < len(done), "the kill came after the last window"
    for line in done:
        assert len(line["state"]["seqs"]) == len(set(line["state"]["seqs"])), line["start"]
        assert sum(line["state"]["counts"].values()) == len(line["state"]["seqs"])
    assert all_folded(journal, sequences)
    twice = [start for start, n in Counter(line["start"] for line in done).items() if n > 1]
    assert len(twice) <= 1, twice
    # (A window open at the kill must have been resumed with its state: records folded in
    # and checkpointed by the killed process are never delivered again, so all_folded
    # holds only if the new process carried them on.)
    print(f"\nkinesis windows e2e: {len(done)} finals, {killed_after} before the kill, "
          f"windows finalised twice: {twice}")


def all_folded(journal: Path, sequences: list[str]) -> bool:
    return len(sequences) == RECORDS and not missing(journal, sequences)


def missing(journal: Path, sequences: list[str]) -> set[str]:
    folded = {seq for line in finals(journal) for seq in line["state"].get("seqs", [])}
    return set(sequences) - folded
