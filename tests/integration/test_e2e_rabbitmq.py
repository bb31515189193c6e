# ruff: noqa: F811  (pytest fixtures imported explicitly, per the harness convention)
"""`esm run` against a real RabbitMQ broker: kill -9 mid-stream twice, restart, and count
what the handler saw; and the broker itself killed and restarted under a running daemon.

"Nothing lost": every message was processed successfully at least once and the queue is
empty after a clean stop (closing the connection would have requeued anything unacked).
The duplicate bound: a message is processed twice only when esm held it unacked at a kill
(processed, ack not yet on the broker). basic.qos caps what esm holds unacked at
`prefetch_count`, so successful deliveries - messages <= prefetch_count * kills.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pika
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
from tests.servers.rabbitmq_server import PASSWORD, RabbitMQServer, rabbitmq_server  # noqa: F401

pytestmark = pytest.mark.integration

MESSAGES = 4000
BATCH_SIZE = 50
PREFETCH = 2 * BATCH_SIZE  # the default: 2 x batch_size x concurrency (1)
KILLS_AT = (0.3, 0.6)


def produce(server: RabbitMQServer, queue: str, count: int,
            poison: frozenset[str] = frozenset()) -> list[str]:
    ids = [f"m{n}" for n in range(count)]
    with server.connection() as connection:
        channel = connection.channel()
        channel.queue_declare(queue, durable=True)
        channel.confirm_delivery()
        for n, message_id in enumerate(ids):
            body = json.dumps({"id": message_id, "group": queue, "seq": n,
                               "poison": message_id in poison})
            channel.basic_publish("", queue, body, pika.BasicProperties(
                message_id=message_id, delivery_mode=2, content_type="application/json"))
    return ids


def ready(server: RabbitMQServer, queue: str) -> int:
    with server.connection() as connection:
        return int(connection.channel().queue_declare(queue, passive=True).method.message_count)


def mapping(server: RabbitMQServer, queue: str) -> dict[str, Any]:
    return {"name": "e2e-rabbitmq",
            "source": {"type": "rabbitmq", "url": server.url, "queues": [queue],
                       "password_env": "E2E_RABBITMQ_PASSWORD"},
            "batch_size": BATCH_SIZE, "maximum_batching_window_in_seconds": 0.2,
            "target": python_target(timeout_seconds=10)}


class Run:
    """One test's queue of produced messages, daemon config, journal and environment."""

    def __init__(self, server: RabbitMQServer, tmp_path: Path, count: int,
                 poison: frozenset[str] = frozenset(), **knobs: str) -> None:
        self.server = server
        self.queue = f"e2e-{uuid.uuid4().hex[:8]}"
        self.ids = produce(server, self.queue, count, poison)
        self.tmp_path = tmp_path
        self.journal = Journal(tmp_path / "journal.jsonl")
        self.env = daemon_env(self.journal.path, **knobs)
        self.env["E2E_RABBITMQ_PASSWORD"] = PASSWORD
        self.log = tmp_path / "daemon.log"

    def config(self, **overrides: Any) -> Path:
        base = mapping(self.server, self.queue)
        source = {**base["source"], **overrides.pop("source", {})}
        return write_config(self.tmp_path, [{**base, **overrides, "source": source}])

    def ready(self) -> int:
        return ready(self.server, self.queue)

    def describe(self) -> str:
        return f"{self.ready()} message(s) ready"


def test_kill_9_twice_mid_stream_loses_nothing_and_bounds_duplicates(
        tmp_path: Path, rabbitmq_server: RabbitMQServer) -> None:
    # Given 4,000 persistent messages on a durable queue
    run = Run(rabbitmq_server, tmp_path, MESSAGES, sleep_seconds="0.01")
    config, journal, ids, queue = run.config(), run.journal, run.ids, run.queue
    # When the daemon is killed with SIGKILL at ~30% and ~60% and restarted each time
    progress = kill_at_progress(config, run.env, run.log, journal,
                                [int(f * MESSAGES) for f in KILLS_AT])
    metrics = run_until_settled(config, run.env, run.log, journal, ids,
                                lambda: run.ready() == 0, run.describe)
    # Then every message was processed, nothing is left, duplicates stay within prefetch
    ok = Counter(journal.ok_ids())
    duplicates, bound = sum(ok.values()) - MESSAGES, PREFETCH * len(KILLS_AT)
    print(f"\nrabbitmq e2e: {MESSAGES} messages, kills at {progress} processed, "
          f"{duplicates} duplicate successes (bound {bound}), "
          f"{len(journal.lines('start'))} invocations")
    assert all(0 < p < MESSAGES for p in progress), "a kill came after the end"
    assert set(ok) == set(ids)
    assert ready(rabbitmq_server, queue) == 0  # after a clean stop: everything was acked
    assert journal.redelivered_unfailed(), "the kills left nothing unacked: not mid-stream"
    assert duplicates <= bound, [(i, n) for i, n in ok.items() if n > 1][:20]
    label = "{mapping=e2e-rabbitmq}"
    assert metrics[f"esm_polled_events_total{label}"] >= 1


def test_broker_killed_and_restarted_mid_stream_the_reader_reconnects(
        tmp_path: Path) -> None:
    server = RabbitMQServer()  # its own broker: this test kills it
    server.start()
    try:
        run = Run(server, tmp_path, 1000, sleep_seconds="0.05")
        journal, ids, queue = run.journal, run.ids, run.queue
        server.dump_metadata()  # the crash below is about connections, not declarations
        with DaemonProcess(run.config(), run.env, run.log) as daemon:
            daemon.wait_ready()
            wait_until(lambda: journal.processed() >= 200, 60, daemon.log_tail)
            # When the broker crashes mid-stream
            server.kill()
            wait_until(lambda: daemon.get("/readyz")[0] != 200, 30,
                       lambda: f"/readyz still 200 with the broker down\n{daemon.log_tail()}")
            # and comes back
            server.start()
            server.assert_has_queue(queue)
            daemon.wait_ready(timeout_seconds=90, diagnose=lambda: (
                f"the broker's queues: {server.queues_listing()!r}\n{server.boot_summary()}\n"
                f"{server.crash_files_mention(queue)}\n"
                f"{server.log_tail(4000)}"))
            wait_until(lambda: set(journal.ok_ids()) >= set(ids), 90,
                       lambda: f"{missing(ids, journal.ok_ids())}\n{daemon.log_tail()}")
            wait_until(lambda: ready(server, queue) == 0, 30, daemon.log_tail)
            restarts = daemon.metrics()["esm_reader_restarts_total{mapping=e2e-rabbitmq}"]
            daemon.terminate()
            assert daemon.wait_exit(30) == 0, daemon.log_tail()
        # Then nothing was lost, the reader restarted, and the queue is empty
        assert restarts >= 1
        assert ready(server, queue) == 0
    finally:
        server.cleanup()


def test_poison_message_goes_to_the_destination_after_max_deliveries(
        tmp_path: Path, rabbitmq_server: RabbitMQServer) -> None:
    # Given 20 messages, one of which always fails, max_deliveries 2 and partial responses
    run = Run(rabbitmq_server, tmp_path, 20, poison=frozenset({"m7"}))
    journal, ids, queue, dead = run.journal, run.ids, run.queue, tmp_path / "dead.jsonl"
    config = run.config(source={"max_deliveries": 2},
                        function_response_types=["ReportBatchItemFailures"],
                        retry_backoff={"initial_seconds": 0.1, "jitter": False},
                        destination_config={"on_failure": {"type": "file", "path": str(dead)}})
    # When the daemon runs until the notice is written and the queue is empty
    metrics = run_until_settled(
        config, run.env, run.log, journal, [i for i in ids if i != "m7"],
        lambda: dead.exists() and run.ready() == 0,
        lambda: f"dead letters: {dead.exists()}, {run.describe()}")
    # Then the others succeeded once, the poison one failed twice and was dead-lettered
    assert sorted(journal.ok_ids()) == sorted(i for i in ids if i != "m7")
    assert [line["delivery"] for line in journal.lines("fail")] == [1, 2]
    [notice] = [json.loads(line) for line in dead.read_text().splitlines()]
    assert notice["requestContext"]["condition"] == "MaxDeliveriesExceeded"
    [message] = notice["payload"]["rmqMessagesByQueue"][f"{queue}::/"]
    assert message["basicProperties"]["messageId"] == "m7"
    assert message["redelivered"] is True
    assert notice["RabbitMQBatchInfo"]["queues"][f"{queue}::/"]["messageCount"] == 1
    assert ready(rabbitmq_server, queue) == 0
    label = "{mapping=e2e-rabbitmq}"
    assert metrics[f"esm_on_failure_destination_delivered_events_total{label}"] == 1


def test_sigterm_mid_stream_then_restart_processes_each_message_exactly_once(
        tmp_path: Path, rabbitmq_server: RabbitMQServer) -> None:
    # Given 2,000 messages
    run = Run(rabbitmq_server, tmp_path, 2000, sleep_seconds="0.02")
    config, journal, ids, queue = run.config(), run.journal, run.ids, run.queue
    # When the daemon gets SIGTERM at ~50% (in-flight batches finish and are acked, what it
    # buffered goes back to the queue) and is started again
    [at_stop] = kill_at_progress(config, run.env, run.log, journal, [1000], graceful=True)
    run_until_settled(config, run.env, run.log, journal, ids, lambda: run.ready() == 0,
                      run.describe)
    # Then no message was processed twice and none is left
    assert 0 < at_stop < len(ids)
    assert (journal.processed(), journal.duplicated()) == (len(ids), [])
    assert ready(rabbitmq_server, queue) == 0
