"""`esm run` against ElasticMQ (issue #5): kill -9 mid-batch then restart, FIFO order per
message group across failures, filtered messages deleted, the concurrency cap honoured.

Duplicate bound for the kill test: a successful processing is repeated only when the daemon
was killed after the handler finished a batch and before its DeleteMessageBatch. The reader
deletes before the lane takes its next batch and runs at most `maximum_concurrency` batches
at once, so `successful deliveries - records <= batch_size * maximum_concurrency * kills`.
Messages named in batchItemFailures are redelivered by design and are not counted.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.integration.e2e_support import (
    DaemonProcess,
    Journal,
    daemon_env,
    kill_at_progress,
    missing,
    python_target,
    run_until_settled,
    wait_until,
    write_config,
)
from tests.servers.sqs_server import REGION, SqsServer, sqs_server  # noqa: F401

pytestmark = pytest.mark.integration

BATCH_SIZE = 10
MAX_CONCURRENCY = 2
LABEL = "{mapping=e2e-sqs}"


def send(server: SqsServer, url: str, bodies: list[dict[str, Any]], fifo: bool = False) -> None:
    """Send in order, 10 per SendMessageBatch; FIFO messages go to their body's group."""
    client = server.client()
    for start in range(0, len(bodies), 10):
        entries = []
        for n, body in enumerate(bodies[start:start + 10]):
            entry = {"Id": str(n), "MessageBody": json.dumps(body)}
            if fifo:
                entry["MessageGroupId"] = body["group"]
            entries.append(entry)
        reply = client.send_message_batch(QueueUrl=url, Entries=entries)
        assert not reply.get("Failed"), reply["Failed"]


def queue_counts(server: SqsServer, url: str) -> dict[str, int]:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
             "ApproximateNumberOfMessagesDelayed"]
    attrs = server.client().get_queue_attributes(QueueUrl=url, AttributeNames=names)
    return {name: int(attrs["Attributes"].get(name, "0")) for name in names}


def queue_empty(server: SqsServer, url: str) -> bool:
    return not any(queue_counts(server, url).values())


def sqs_mapping(server: SqsServer, url: str, *, visibility_timeout_seconds: int,
                maximum_concurrency: int = MAX_CONCURRENCY) -> dict[str, Any]:
    return {
        "name": "e2e-sqs",
        "source": {"type": "sqs", "queue_url": url, "endpoint_url": server.endpoint_url,
                   "region": REGION, "backoff_on_failure": True, "slots": 5, "pollers": 2,
                   "wait_time_seconds": 1},
        "filter_criteria": {"filters": [{"pattern": '{"body": {"type": ["order"]}}'}]},
        "batch_size": BATCH_SIZE,
        "function_response_types": ["ReportBatchItemFailures"],
        "scaling_config": {"maximum_concurrency": maximum_concurrency},
        "retry_backoff": {"initial_seconds": 0.2, "maximum_seconds": 1},
        "target": python_target(timeout_seconds=visibility_timeout_seconds),
    }


def orders_and_pings(count: int, ping_every: int | None = None) -> list[dict[str, Any]]:
    """`count` bodies; with `ping_every`, every such n-th is a ping the filter rejects."""
    def kind(n: int) -> str:
        return "ping" if ping_every and n % ping_every == ping_every - 1 else "order"
    return [{"id": f"m{n}", "type": kind(n), "seq": n} for n in range(count)]


def test_kill_9_mid_batch_then_restart_loses_nothing_and_deletes_filtered(
        tmp_path: Path, sqs_server: SqsServer) -> None:  # noqa: F811
    # Given 2,000 messages (200 of them pings the filter rejects) and a target that fails
    # about 2% of records on their first two receives
    url = sqs_server.create_queue(visibility_timeout=5)
    bodies = orders_and_pings(2000, ping_every=10)
    send(sqs_server, url, bodies)
    orders = [b["id"] for b in bodies if b["type"] == "order"]
    pings = {b["id"] for b in bodies if b["type"] == "ping"}
    config = write_config(tmp_path, [sqs_mapping(sqs_server, url, visibility_timeout_seconds=5)])
    journal = Journal(tmp_path / "journal.jsonl")
    env = daemon_env(journal.path, sleep_seconds="0.02", fail_per_mille="22")
    log = tmp_path / "daemon.log"
    # When the daemon is killed -9 at ~40% and restarted
    [at_kill] = kill_at_progress(config, env, log, journal, [int(0.4 * len(orders))])
    metrics = run_until_settled(config, env, log, journal, orders,
                                lambda: queue_empty(sqs_server, url),
                                lambda: f"queue not empty: {queue_counts(sqs_server, url)}")
    # Then every order was processed, the queue is empty (pings deleted, not delivered),
    # and duplicates stay within what was in flight at the kill
    ok = Counter(journal.ok_ids())
    duplicates, bound = sum(ok.values()) - len(orders), BATCH_SIZE * MAX_CONCURRENCY
    seen = {line["id"] for line in journal.lines() if "id" in line}
    redelivered = journal.redelivered_unfailed()
    print(f"\nsqs e2e: {len(orders)} orders + {len(pings)} pings, kill at {at_kill} processed, "
          f"{len(journal.lines('fail'))} failed deliveries, {len(redelivered)} back after the "
          f"kill, {duplicates} duplicate successes (bound {bound})")
    assert 0 < at_kill < len(orders)
    assert set(ok) == set(orders)
    assert not seen & pings, "filtered-out messages reached the target"
    assert queue_empty(sqs_server, url)
    assert journal.lines("fail"), "the target never failed: partial failures untested"
    assert redelivered, "the kill left no message in flight: it was not mid-batch"
    assert duplicates <= bound, [(i, n) for i, n in ok.items() if n > 1][:20]
    assert metrics[f"esm_filtered_out_events_total{LABEL}"] > 0  # this run filtered pings too


def test_fifo_keeps_each_message_groups_order_across_partial_failures(
        tmp_path: Path, sqs_server: SqsServer) -> None:  # noqa: F811
    # Given a FIFO queue with 4 groups of 30 messages, and a target that follows the FIFO
    # rule (stop at the first failure, report it and every later record) failing ~10%
    url = sqs_server.create_queue(fifo=True, visibility_timeout=5)
    groups = ["g0", "g1", "g2", "g3"]
    bodies = [{"id": f"{g}-{n}", "group": g, "seq": n, "type": "order"}
              for n in range(30) for g in groups]
    send(sqs_server, url, bodies, fifo=True)
    mapping = sqs_mapping(sqs_server, url, visibility_timeout_seconds=5, maximum_concurrency=4)
    journal = Journal(tmp_path / "journal.jsonl")
    env = daemon_env(journal.path, fail_per_mille="100", stop_at_first_failure="1")
    # When the daemon runs until the queue is empty
    run_until_settled(write_config(tmp_path, [mapping]), env, tmp_path / "daemon.log", journal,
                      [b["id"] for b in bodies], lambda: queue_empty(sqs_server, url),
                      lambda: f"queue not empty: {queue_counts(sqs_server, url)}")
    # Then, per group, the successful processings are exactly the send order
    assert_each_group_in_order(journal, groups, 30,
                               f"{len(journal.lines('start'))} invocations")


def test_fifo_with_a_group_per_message_pair_keeps_no_state_for_finished_groups(
        tmp_path: Path, sqs_server: SqsServer) -> None:  # noqa: F811
    # Given a FIFO queue with 400 message groups of 2 messages each (as with one group per
    # order or customer), and a target that fails ~5% of records. (A visibility timeout
    # that outlasts a slow moment of the machine: the reader holds up to 1,000 messages
    # ahead, and one received again after it ran out would be processed twice.)
    url = sqs_server.create_queue(fifo=True, visibility_timeout=30)
    groups = [f"order-{n}" for n in range(400)]
    bodies = [{"id": f"{g}-{n}", "group": g, "seq": n, "type": "order"}
              for n in range(2) for g in groups]
    send(sqs_server, url, bodies, fifo=True)
    mapping = sqs_mapping(sqs_server, url, visibility_timeout_seconds=30, maximum_concurrency=4)
    config = write_config(tmp_path, [mapping])
    journal = Journal(tmp_path / "journal.jsonl")
    env = daemon_env(journal.path, fail_per_mille="50", stop_at_first_failure="1")
    expected = {b["id"] for b in bodies}
    with DaemonProcess(config, env, tmp_path / "daemon.log") as daemon:
        daemon.wait_ready()
        # When every message was processed and the queue is empty
        wait_until(lambda: set(journal.ok_ids()) >= expected, 120,
                   lambda: f"{missing(expected, journal.ok_ids())}\n{daemon.log_tail()}")
        wait_until(lambda: queue_empty(sqs_server, url), 60,
                   lambda: f"queue not empty: {queue_counts(sqs_server, url)}")
        # Then the reader forgets the finished groups (its status, refreshed every 5 s,
        # counts the lanes it keeps state for), and each group kept its order
        def lanes() -> int:
            return int(daemon.mappings()[0]["lanes"])
        wait_until(lambda: lanes() == 0, 30,
                   lambda: f"the reader still keeps {lanes()} lanes\n{daemon.log_tail()}")
    assert_each_group_in_order(journal, groups, 2, "lanes kept at the end: 0")


def assert_each_group_in_order(journal: Journal, groups: list[str], per_group: int,
                               summary: str) -> None:
    """Each group's successful processings are its messages in send order, once each, and
    the target failed some deliveries (else order across failures went untested)."""
    failures = journal.lines("fail")
    print(f"\nsqs fifo e2e: {per_group * len(groups)} messages in {len(groups)} groups, "
          f"{len(failures)} failed deliveries, {summary}")
    assert failures, "the target never failed: order across failures untested"
    for group in groups:
        processed = [line["seq"] for line in journal.lines("ok") if line["group"] == group]
        assert processed == list(range(per_group)), \
            f"group {group} processed out of order: {processed}"


def test_concurrent_invocations_never_exceed_maximum_concurrency(
        tmp_path: Path, sqs_server: SqsServer) -> None:  # noqa: F811
    # Given 5 slots (lanes) but scaling_config.maximum_concurrency 2, and a slow target
    url = sqs_server.create_queue(visibility_timeout=5)
    bodies = orders_and_pings(300)
    send(sqs_server, url, bodies)
    mapping = sqs_mapping(sqs_server, url, visibility_timeout_seconds=5)
    journal = Journal(tmp_path / "journal.jsonl")
    env = daemon_env(journal.path, sleep_seconds="0.1")
    # When the daemon works through the queue
    run_until_settled(write_config(tmp_path, [mapping]), env, tmp_path / "daemon.log", journal,
                      [b["id"] for b in bodies], lambda: queue_empty(sqs_server, url),
                      lambda: f"queue not empty: {queue_counts(sqs_server, url)}")
    # Then at most 2 invocations ever ran at once (and 2 did: the cap was what held it)
    concurrency = Counter(line["concurrent"] for line in journal.lines("start"))
    print(f"\nsqs concurrency e2e: invocations by concurrency at start {dict(concurrency)}")
    assert max(concurrency) == MAX_CONCURRENCY, dict(concurrency)


def test_sigterm_mid_queue_then_restart_processes_each_message_exactly_once(
        tmp_path: Path, sqs_server: SqsServer) -> None:  # noqa: F811
    # Given 1,000 orders and a target with occasional partial failures
    url = sqs_server.create_queue(visibility_timeout=5)
    bodies = orders_and_pings(1000)
    send(sqs_server, url, bodies)
    ids = [b["id"] for b in bodies]
    config = write_config(tmp_path, [sqs_mapping(sqs_server, url, visibility_timeout_seconds=5)])
    journal = Journal(tmp_path / "journal.jsonl")
    env = daemon_env(journal.path, sleep_seconds="0.02", fail_per_mille="22")
    log = tmp_path / "daemon.log"
    # When the daemon gets SIGTERM at ~50% (in-flight batches finish and are deleted,
    # buffered messages are handed back) and is started again
    [at_stop] = kill_at_progress(config, env, log, journal, [500], graceful=True)
    run_until_settled(config, env, log, journal, ids, lambda: queue_empty(sqs_server, url),
                      lambda: f"queue not empty: {queue_counts(sqs_server, url)}")
    # Then no message was processed successfully twice
    print(f"\nsqs graceful restart: stopped at {at_stop}, "
          f"{len(journal.lines('fail'))} failed deliveries")
    assert 0 < at_stop < len(ids)
    assert (journal.processed(), journal.duplicated()) == (len(ids), [])


def test_messages_waiting_for_a_busy_target_are_not_delivered_twice(
        tmp_path: Path, sqs_server: SqsServer) -> None:  # noqa: F811
    # Given a 2 s visibility timeout, two invocations at a time taking 1 s each, and 5 slots
    # of 10 plus 20 read ahead: the last messages held wait about 3.5 s for the target
    url = sqs_server.create_queue(visibility_timeout=2)
    bodies = orders_and_pings(100)
    send(sqs_server, url, bodies)
    ids = [b["id"] for b in bodies]
    mapping = sqs_mapping(sqs_server, url, visibility_timeout_seconds=2)
    journal = Journal(tmp_path / "journal.jsonl")
    log = tmp_path / "daemon.log"
    # When the daemon works through the queue
    run_until_settled(write_config(tmp_path, [mapping]), daemon_env(journal.path,
                      sleep_seconds="1"), log, journal, ids,
                      lambda: queue_empty(sqs_server, url),
                      lambda: f"queue not empty: {queue_counts(sqs_server, url)}")
    # Then esm kept what it held hidden: each message was invoked once, and no delete or
    # visibility change met a receipt handle gone stale (with `extend_visibility: false`
    # this run invoked the 100 messages 320 times)
    invoked = Counter(line["id"] for line in journal.lines() if "id" in line)
    print(f"\nsqs busy target: {sum(invoked.values())} invocations of {len(ids)} messages")
    assert {i: n for i, n in invoked.items() if n > 1} == {}
    assert sorted(invoked) == sorted(ids)
    assert "ReceiptHandleIsInvalid" not in log.read_text()
