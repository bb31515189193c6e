"""`esm run` against a real ActiveMQ broker: kill -9 twice mid-queue, restart, and count
what the handler saw; a poison message ends in the on-failure destination after its 7th
delivery, or in ActiveMQ.DLQ when there is none.

"Nothing lost": every message was processed successfully at least once, and afterwards the
queue is empty (every message was accepted). Failed batches are retried whole, as AWS does
for MQ; at a kill, unsettled messages go back to the queue, so duplicates are bounded by
what the daemon held: batch_size × slots per kill, plus the credit it had prefetched.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from connectors.activemq.sending import send_messages
from connectors.activemq.settings import ActiveMQSettings
from connectors.activemq.source import ActiveMQSource
from esm.clock import SystemClock
from esm.interfaces import ConnectorContext
from tests.integration.e2e_support import (
    DaemonProcess,
    Journal,
    daemon_env,
    kill_at_progress,
    run_until_settled,
    wait_until,
    write_config,
)
from tests.servers.activemq_server import (  # noqa: F401
    ActiveMQServer,
    activemq_server,
    secured_activemq_server,
)

pytestmark = pytest.mark.integration

RECORDS = 3000
BATCH_SIZE = 20
SLOTS = 3
CREDIT = 100
KILLS_AT = (0.3, 0.6)
HANDLER = "tests.integration.activemq_handlers:record"


def produce(server: ActiveMQServer, queue: str, count: int, poison: frozenset[str] = frozenset(),
            ) -> list[str]:
    ids = [f"m{n}" for n in range(count)]
    messages = [{"messageType": "jms/text-message", "data": base64.b64encode(json.dumps(
        {"id": i, "group": queue, "seq": n, "poison": i in poison}).encode()).decode()}
        for n, i in enumerate(ids)]
    send_messages(server.url, queue, messages, user=None, password=None, timeout_seconds=10)
    return ids


def mapping(server: ActiveMQServer, queue: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": "e2e-activemq",
        "source": {"type": "activemq", "url": server.url, "queue": queue, "slots": SLOTS,
                   "credit": CREDIT, "redelivery_delay_seconds": 0.2},
        "batch_size": BATCH_SIZE,
        "maximum_batching_window_in_seconds": 0.1,
        "target": {"type": "python", "handler": HANDLER, "timeout_seconds": 10},
        **extra,
    }


def drain(server: ActiveMQServer, queue: str, seconds: float = 2.0) -> list[dict[str, Any]]:
    """Accept and return whatever is left in `queue` (the daemon must be stopped)."""
    source = ActiveMQSource(ActiveMQSettings(queue=queue, url=server.url),
                            ConnectorContext("check", threading.Event(), SystemClock()))
    source.open(_NoListener())
    got = []
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            records = source.poll(500, 0.3)
            source.ack(records)
            got += [json.loads(base64.b64decode(r.payload["data"])) for r in records]
    finally:
        source.close()
    return got


class _NoListener:
    def lanes_assigned(self, lanes: object) -> None:
        pass

    def lanes_revoked(self, lanes: object) -> None:
        pass


def test_kill_9_twice_mid_queue_loses_nothing_and_bounds_duplicates(
        tmp_path: Path, activemq_server: ActiveMQServer) -> None:  # noqa: F811
    # Given 3,000 messages and a handler failing ~0.5% of messages on their first delivery
    # (so ~10% of batches fail whole and come back)
    queue = f"e2e-{uuid.uuid4().hex[:8]}"
    ids = produce(activemq_server, queue, RECORDS)
    config = write_config(tmp_path, [mapping(activemq_server, queue)])
    journal = Journal(tmp_path / "journal.jsonl")
    env = daemon_env(journal.path, sleep_seconds="0.01", fail_per_mille="5",
                     fail_below_delivery="2")
    log = tmp_path / "daemon.log"
    # When the daemon is killed with SIGKILL at ~30% and ~60% and restarted each time
    progress = kill_at_progress(config, env, log, journal, [int(f * RECORDS) for f in KILLS_AT])
    run_until_settled(config, env, log, journal, ids, lambda: True, lambda: "")
    # Then every message was processed, the queue is empty, and duplicates are bounded
    ok, failed = Counter(journal.ok_ids()), journal.lines("fail")
    left = drain(activemq_server, queue)
    duplicates = sum(ok.values()) - RECORDS
    bound = (BATCH_SIZE * SLOTS + CREDIT) * len(KILLS_AT)
    print(f"\nactivemq e2e: {RECORDS} messages, kills at {progress} processed, "
          f"{len(failed)} failed deliveries, {duplicates} duplicate successes (bound {bound}), "
          f"{len(journal.lines('start'))} invocations")
    assert all(0 < p < RECORDS for p in progress), "a kill came after the end"
    assert set(ok) == set(ids)
    assert left == [], f"{len(left)} message(s) left in the queue"
    assert failed, "no batch failed: the retry path was not exercised"
    assert duplicates <= bound, [(i, n) for i, n in ok.items() if n > 1][:20]


def test_poison_message_reaches_the_destination_after_its_seventh_delivery(
        tmp_path: Path, activemq_server: ActiveMQServer) -> None:  # noqa: F811
    queue = f"e2e-poison-{uuid.uuid4().hex[:8]}"
    produce(activemq_server, queue, 1, poison=frozenset({"m0"}))
    dead = tmp_path / "dead.jsonl"
    config = write_config(tmp_path, [mapping(activemq_server, queue, destination_config={
        "on_failure": {"type": "file", "path": str(dead)}})])
    journal = Journal(tmp_path / "journal.jsonl")
    with DaemonProcess(config, daemon_env(journal.path), tmp_path / "daemon.log") as daemon:
        daemon.wait_ready()
        wait_until(lambda: dead.exists() and dead.read_text().strip() != "", 60,
                   lambda: f"no notice; journal {journal.lines()}\n{daemon.log_tail()}")
    notice = json.loads(dead.read_text().splitlines()[0])
    assert notice["requestContext"]["condition"] == "MaxDeliveriesExceeded"
    info = notice["ActiveMQBatchInfo"]
    assert info["maxDeliveryCount"] == 7 and info["queue"] == queue
    assert len(journal.lines("start")) == 7  # invoked on each of its 7 deliveries
    assert drain(activemq_server, queue, seconds=1.0) == []  # accepted after the notice


def test_poison_message_without_destination_lands_in_the_broker_dlq(
        tmp_path: Path, activemq_server: ActiveMQServer) -> None:  # noqa: F811
    queue = f"e2e-dlq-{uuid.uuid4().hex[:8]}"
    produce(activemq_server, queue, 1, poison=frozenset({"m0"}))
    config = write_config(tmp_path, [mapping(activemq_server, queue)])
    journal = Journal(tmp_path / "journal.jsonl")
    with DaemonProcess(config, daemon_env(journal.path), tmp_path / "daemon.log") as daemon:
        daemon.wait_ready()
        wait_until(lambda: len(journal.lines("start")) >= 7, 60,
                   lambda: f"{len(journal.lines('start'))} invocations\n{daemon.log_tail()}")
        time.sleep(1.0)  # an 8th invocation would come within the 0.2 s redelivery delay
        assert len(journal.lines("start")) == 7
    dlq = drain(activemq_server, "ActiveMQ.DLQ")
    assert [m for m in dlq if m.get("group") == queue] == [
        {"id": "m0", "group": queue, "seq": 0, "poison": True}]


def test_wrong_password_keeps_readyz_not_ready_and_names_the_cause(
        tmp_path: Path, secured_activemq_server: ActiveMQServer) -> None:  # noqa: F811
    source = {"type": "activemq", "url": secured_activemq_server.url, "queue": "orders",
              "username": "esm", "password_env": "ESM_TEST_MQ_PASSWORD"}
    config = write_config(tmp_path, [{**mapping(secured_activemq_server, "orders"),
                                      "source": source}])
    env = {**daemon_env(tmp_path / "journal.jsonl"), "ESM_TEST_MQ_PASSWORD": "wrong"}
    with DaemonProcess(config, env, tmp_path / "daemon.log") as daemon:
        def failing() -> bool:
            status = daemon.get("/mappings")
            return status[0] == 200 and "Authentication failed" in status[1]
        wait_until(failing, 60, lambda: f"{daemon.get('/mappings')}\n{daemon.log_tail()}")
        assert daemon.get("/readyz")[0] != 200
        [state] = daemon.mappings()
        assert "cannot read queue 'orders'" in state["lastError"]
        assert "wrong" not in daemon.log_tail(100_000)  # the password is never logged


def test_daemon_resumes_after_the_broker_is_killed_and_restarted(tmp_path: Path) -> None:
    # Given a daemon reading a broker of its own, part way through a queue
    server = ActiveMQServer()
    server.start()
    try:
        queue = f"e2e-restart-{uuid.uuid4().hex[:8]}"
        ids = produce(server, queue, 400)
        source = {**mapping(server, queue)["source"], "idle_timeout_seconds": 2}
        config = write_config(tmp_path, [{**mapping(server, queue), "source": source}])
        journal = Journal(tmp_path / "journal.jsonl")
        env = daemon_env(journal.path, sleep_seconds="0.02")
        with DaemonProcess(config, env, tmp_path / "daemon.log") as daemon:
            daemon.wait_ready()
            wait_until(lambda: journal.processed() >= 100, 60, daemon.log_tail)
            # When the broker is killed (SIGKILL) and started again on the same port and data
            server.kill()
            wait_until(lambda: daemon.get("/readyz")[0] != 200, 30,
                       lambda: f"still ready\n{daemon.log_tail()}")
            server.start()
            # Then the daemon reconnects by itself and every message gets processed
            wait_until(lambda: set(journal.ok_ids()) >= set(ids), 120,
                       lambda: f"{journal.processed()} of {len(ids)}\n{daemon.log_tail()}")
            wait_until(lambda: daemon.get("/readyz")[0] == 200, 30, daemon.log_tail)
            assert daemon.mappings()[0]["readerRestarts"] >= 1
        assert drain(server, queue) == []
    finally:
        server.cleanup()
