# ruff: noqa: F811  (pytest fixtures are imported by name, then requested by name)
"""`esm run` with parallelization_factor > 1 against a real KRaft broker: one partition
split into key slots, kill -9 mid-run and restart.

What is proven: each key's records are delivered in offset order the first time (records
with a null key count as one key), different keys of the partition ran side by side (the
partition's first deliveries are out of offset order), a process never processed an
offset successfully twice, and after the restart every offset was processed and the
group's committed offset is at the end: the commit never passed a record that a slot
had not finished, or the restart would have skipped it.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.e2e_support import wait_until
from tests.integration.kafka_e2e_support import (  # noqa: F401
    Case,
    journal_lines,
    one_partition,
    send_all,
    stop_cleanly,
)
from tests.servers.kafka_server import kafka_server  # noqa: F401

pytestmark = pytest.mark.integration

RECORDS = 3000
KEYS = 13


def produce_keyed(case: Case) -> None:
    """Record n has key `key<n mod 13>`, except every tenth record, which has no key."""
    send_all(case, ({"key": None if n % 10 == 0 else f"key{n % KEYS}".encode(),
                     "value": b'{"n": %d}' % n, "partition": 0} for n in range(RECORDS)))


def first_deliveries(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Journal lines of each offset's first invocation, in journal order."""
    seen: set[int] = set()
    first = []
    for line in lines:
        if line["offset"] not in seen:
            seen.add(line["offset"])
            first.append(line)
    return first


def test_kill_9_with_key_slots_keeps_order_per_key_and_loses_nothing(
        one_partition: Case) -> None:
    case = one_partition
    # Given one partition of 3,000 records over 13 keys and null keys, factor 5, a handler
    # taking 50 ms a batch and failing some batches twice before they succeed
    produce_keyed(case)
    knobs = {"sleep_seconds": "0.05", "fail_per_mille": "15", "fail_attempts": "2"}
    keys = {"batch_size": 20, "parallelization_factor": 5}
    with case.daemon(knobs=knobs, **keys) as d:
        d.wait_ready()
        # When the daemon is killed -9 with about a third processed
        wait_until(lambda: len(journal_lines(case.journal, "ok")) >= 1000, 90,
                   lambda: f"stuck at {len(journal_lines(case.journal, 'ok'))}\n{d.log_tail()}")
        d.kill()
    killed_at = len(journal_lines(case.journal, "ok"))
    assert killed_at < RECORDS, "finished before the kill: the test proved nothing"
    # And started again
    with case.daemon(knobs=knobs, **keys) as d:
        d.wait_ready()
        case.wait_delivered(RECORDS, d, timeout_seconds=120)
        case.wait_committed(d)
        stop_cleanly(d)
    lines = journal_lines(case.journal)
    # Then every offset was processed and no process processed one twice
    ok = [line for line in lines if line["kind"] == "ok"]
    assert {line["offset"] for line in ok} == set(range(RECORDS))
    for pid in {line["pid"] for line in ok}:
        mine = [line["offset"] for line in ok if line["pid"] == pid]
        assert len(mine) == len(set(mine)), f"process {pid} processed an offset twice"
    # And each key's first deliveries are in offset order (null keys: one key)
    first = first_deliveries(lines)
    by_key: dict[str | None, list[int]] = {}
    for line in first:
        by_key.setdefault(line["key"], []).append(line["offset"])
    assert len(by_key) == KEYS + 1
    for key, offsets in by_key.items():
        assert offsets == sorted(offsets), f"key {key!r} delivered out of order"
    # And keys really ran side by side: the partition as a whole was not in order
    assert [line["offset"] for line in first] != sorted(line["offset"] for line in first)
    assert any(line["kind"] == "fail" for line in lines), "no failure: retries unproven"
