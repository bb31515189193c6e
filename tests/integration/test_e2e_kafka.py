# ruff: noqa: F811  (pytest fixtures are imported by name, then requested by name)
"""`esm run` against a real KRaft broker (issue #4): the daemon as a subprocess, a journaling
Python handler (tests/integration/kafka_handlers), retries, bisection to a Kafka topic
destination, kill -9 and restart, two daemons in one group, and a broker restart.

What "nothing lost" means: every offset of every partition was processed successfully at
least once, and the consumer group's committed offsets equal the log end offsets.

Duplicate bound after a kill -9: a record is processed twice only if its batch succeeded
and its offset was not yet committed when the daemon died. Per partition that is at most
the batch in flight plus one acked batch whose (asynchronous) commit had not landed, so
    successful deliveries − records ≤ partitions × 2 × batch_size per kill.
Records buffered but never invoked are not duplicates: they were never processed.
"""

from __future__ import annotations

import json
import signal
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer

from tests.contract.test_kafka_source import make_topic
from tests.integration.e2e_support import wait_until
from tests.integration.kafka_e2e_support import (
    Case,
    all_delivered,
    group_stable_members,
    journal_lines,
    ok_offsets,
    produce,
    stop_cleanly,
)
from tests.servers.kafka_server import KafkaServer, kafka_server  # noqa: F401

pytestmark = pytest.mark.integration


@pytest.fixture
def case_factory(kafka_server: KafkaServer, tmp_path: Path) -> Iterator[Any]:
    yield lambda partitions: Case(kafka_server, tmp_path, partitions)


def invocations(lines: list[dict[str, Any]]) -> dict[int, list[tuple[str, list[int]]]]:
    """Per partition, its invocations in journal order: (kind, offsets)."""
    runs: dict[int, dict[str, tuple[str, list[int]]]] = defaultdict(dict)
    for line in lines:
        run = runs[line["partition"]].setdefault(line["inv"], (line["kind"], []))
        run[1].append(line["offset"])
    return {p: list(by_inv.values()) for p, by_inv in runs.items()}


def test_partitions_stay_in_order_while_failed_batches_are_retried(case_factory: Any) -> None:
    # Given 3 partitions of 200 records and a handler failing the first 2 tries of the
    # batches holding offsets 7, 93 or 150 (chosen, not hashed: failures in every run)
    case = case_factory(3)
    produce(case.server, case.topic, 3, 600)
    with case.daemon(batch_size=20, knobs={"fail_offsets": "7,93,150",
                                           "fail_attempts": "2"}) as d:
        # When the daemon runs until everything is delivered and committed
        d.wait_ready()
        case.wait_delivered(200, d)
        case.wait_committed(d)
        stop_cleanly(d)
    # Then each partition's successful offsets are exactly 0..199 in order (no gaps, no
    # repeats), and every failed batch was retried as the same batch right after
    assert ok_offsets(case.journal) == {p: list(range(200)) for p in range(3)}
    failures = 0
    for partition, runs in invocations(journal_lines(case.journal)).items():
        for (kind, offsets), (_, after) in zip(runs, runs[1:], strict=False):
            if kind == "fail":
                failures += 1
                assert after == offsets, f"partition {partition}: {offsets} then {after}"
    assert failures > 0, "the handler never failed: the test proved nothing"


def test_poison_record_is_bisected_out_to_the_kafka_destination_and_the_rest_flows(
        case_factory: Any) -> None:
    # Given 2 partitions of 60 records, offset 17 of partition 0 (n=34) always failing
    case = case_factory(2)
    dead_letters = make_topic(case.server, 1)
    produce(case.server, case.topic, 2, 120, poison=frozenset({34}))
    destination = {"on_failure": {"type": "kafka", "bootstrap_servers": [case.server.bootstrap],
                                  "topic": dead_letters}}
    with case.daemon(batch_size=60, maximum_batching_window_in_seconds=1,
                     bisect_batch_on_function_error=True, maximum_retry_attempts=1,
                     destination_config=destination) as d:
        # When the daemon works through both partitions
        d.wait_ready()
        wait_until(lambda: len(ok_offsets(case.journal).get(0, [])) >= 59
                   and len(ok_offsets(case.journal).get(1, [])) >= 60, 90,
                   lambda: f"{ok_offsets(case.journal)}\n{d.log_tail()}")
        case.wait_committed(d)
        stop_cleanly(d)
    # Then only the poison record reached the destination, after its retry was used up
    notices = read_topic(case.server, dead_letters)
    assert len(notices) == 1, notices
    key, notice = notices[0]
    assert key == b"k34"
    assert notice["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert notice["KafkaBatchInfo"]["recordInfo"]["offset"] == "17"
    # And the rest of its partition was delivered once each, in order
    assert ok_offsets(case.journal) == {0: [o for o in range(60) if o != 17],
                                        1: list(range(60))}


def read_topic(server: KafkaServer, topic: str) -> list[tuple[bytes, dict[str, Any]]]:
    consumer = KafkaConsumer(topic, bootstrap_servers=server.bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=3000)
    try:
        return [(m.key, json.loads(m.value)) for m in consumer]
    finally:
        consumer.close()


def test_kill_9_mid_stream_then_restart_loses_nothing_and_bounds_duplicates(
        case_factory: Any) -> None:
    # Given 5,000 records over 3 partitions and a handler taking 0.15 s a batch of 100
    case = case_factory(3)
    produce(case.server, case.topic, 3, 5000)
    knobs = {"sleep_seconds": "0.15"}
    with case.daemon(knobs=knobs) as d:
        d.wait_ready()
        # When the daemon is killed -9 with about 40% processed
        wait_until(lambda: len(journal_lines(case.journal, "ok")) >= 2000, 90,
                   lambda: f"stuck at {len(journal_lines(case.journal, 'ok'))}\n{d.log_tail()}")
        d.kill()
    killed_at = len(journal_lines(case.journal, "ok"))
    assert killed_at < 5000, "finished before the kill: the test proved nothing"
    # And started again
    with case.daemon(knobs=knobs) as d:
        d.wait_ready()
        case.wait_delivered({0: 1667, 1: 1667, 2: 1666}, d, timeout_seconds=120)
        case.wait_committed(d)
        stop_cleanly(d)
    # Then every offset was processed, the group is at the end, and duplicates are bounded
    processed = len(journal_lines(case.journal, "ok"))
    duplicates = processed - 5000
    assert 0 <= duplicates <= 3 * 2 * 100, f"{duplicates} duplicates (killed at {killed_at})"


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
def test_two_daemons_split_the_partitions_and_one_takes_over_when_the_other_stops(
        case_factory: Any, how: signal.Signals) -> None:
    # Given two daemons in one group over 6 partitions, the group settled
    case = case_factory(6)
    with case.daemon("a.yaml") as a, case.daemon("b.yaml") as b:
        a.wait_ready()
        b.wait_ready()
        wait_until(lambda: group_stable_members(case.server, case.group) == 2, 60,
                   lambda: f"group not stable with 2 members\n{a.log_tail()}")
        # When records arrive, each partition is processed by one daemon, both take part
        produce(case.server, case.topic, 6, 120)
        case.wait_delivered(20, b)
        owners = partition_owners(journal_lines(case.journal, "ok"))
        assert all(len(pids) == 1 for pids in owners.values()), owners
        assert {pid for pids in owners.values() for pid in pids} == {a.pid, b.pid}
        # And daemon A stops (SIGTERM: drains and leaves; kill -9: the session times out)
        if how == signal.SIGTERM:
            stop_cleanly(a)
        else:
            a.kill()
        produce(case.server, case.topic, 6, 120, start=120)
        # Then B takes over every partition and nothing is lost
        case.wait_delivered(40, b)
        case.wait_committed(b)
        later = [line for line in journal_lines(case.journal, "ok") if line["offset"] >= 20]
        assert {line["pid"] for line in later} == {b.pid}
        stop_cleanly(b)


def partition_owners(lines: list[dict[str, Any]]) -> dict[int, set[int]]:
    owners: dict[int, set[int]] = defaultdict(set)
    for line in lines:
        owners[line["partition"]].add(line["pid"])
    return dict(owners)


def test_daemon_reconnects_after_a_broker_restart_and_delivers_everything(
        case_factory: Any) -> None:
    # Given a daemon that has processed the first half of the records
    case = case_factory(2)
    produce(case.server, case.topic, 2, 200)
    with case.daemon() as d:
        d.wait_ready()
        case.wait_delivered(100, d)
        # When the broker restarts mid-stream and more records arrive
        case.server.restart()
        produce(case.server, case.topic, 2, 200, start=200)
        # Then the daemon reconnects, delivers the rest and commits to the end
        case.wait_delivered(200, d, timeout_seconds=120)
        case.wait_committed(d, timeout_seconds=60)
        stop_cleanly(d)
    assert all_delivered(case.journal, {0: 200, 1: 200})
