"""Faults around the daemon: the broker killed and restarted, a target that hangs, errs and
answers garbage, and the on-failure destination down for a while."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from tests.chaos.events import event_items
from tests.chaos.harness import ChaosRun, Damage, assert_clean, kill_9, run_checked
from tests.chaos.kits import (
    activemq_kit,
    kafka_committed,
    kafka_kit,
    rabbitmq_kit,
    redis_kit,
    sqs_kit,
)
from tests.chaos.target_server import DamageTargetServer
from tests.servers.redis_server import RedisServer

FAILING = {"PARTIAL_PER_MILLE": "30", "SLEEP_SECONDS": "0.02"}


def broker_restart(server: Any, down_seconds: tuple[float, float] = (1, 3),
                   crash: bool = False) -> Any:
    """An action: stop the broker (with `crash`, SIGKILL it: no clean shutdown), leave it
    down a moment, start it on the same port and data."""
    def action(run: ChaosRun) -> None:
        (server.kill if crash else server.stop)()
        time.sleep(run.rng.uniform(*down_seconds))
        server.start()
    return action


def test_kafka_broker_restart_mid_run_loses_nothing(tmp_path: Path, kafka_server: Any) -> None:
    kit = kafka_kit(kafka_server)
    run = ChaosRun(tmp_path, "kafka broker restart", kit, initial=2000, feed_per_second=300,
                   knobs=FAILING)
    try:
        assert_clean(run.run(Damage([broker_restart(kafka_server)], gap_seconds=(2, 4))))
    finally:
        kit.close()


def test_redis_broker_restart_mid_run_loses_nothing(tmp_path: Path, redis_server: Any) -> None:
    kit = redis_kit(redis_server)
    run = ChaosRun(tmp_path, "redis broker restart", kit, initial=2000, feed_per_second=300,
                   knobs=FAILING)
    try:
        result = run.run(Damage([broker_restart(redis_server), kill_9]))
    finally:
        kit.close()
    assert_clean(result)


def test_elasticmq_restart_mid_run_loses_nothing(tmp_path: Path, sqs_server: Any) -> None:
    run = ChaosRun(tmp_path, "sqs broker restart", sqs_kit(sqs_server, fifo=False),
                   initial=300, feed_per_second=60, knobs=FAILING)
    assert_clean(run.run(Damage([broker_restart(sqs_server, (0.5, 1))], gap_seconds=(1, 2))))


def test_rabbitmq_broker_killed_and_restarted_mid_run_loses_nothing(
        tmp_path: Path, rabbitmq_server: Any) -> None:
    kit = rabbitmq_kit(rabbitmq_server)
    # The damage is to connections, deliveries and acks, not to the queues' declarations:
    # on the disk before the crash (see RabbitMQServer.dump_metadata).
    rabbitmq_server.dump_metadata()
    restart = broker_restart(rabbitmq_server, (1, 2), crash=True)

    def restart_keeping_the_queues(run: ChaosRun) -> None:
        # A queue the broker itself lost takes its records with it: say so, rather than
        # let the ledger count them as lost by the daemon.
        restart(run)
        for queue in kit.source["queues"]:
            rabbitmq_server.assert_has_queue(queue)
    run = ChaosRun(tmp_path, "rabbitmq broker restart", kit,
                   initial=600, feed_per_second=150, knobs=FAILING)
    run_checked(run, Damage([restart_keeping_the_queues, kill_9]))


def test_activemq_broker_killed_and_restarted_mid_run_loses_nothing(
        tmp_path: Path, activemq_server: Any) -> None:
    run = ChaosRun(tmp_path, "activemq broker restart", activemq_kit(activemq_server),
                   initial=500, feed_per_second=100, knobs={"SLEEP_SECONDS": "0.02"})
    run_checked(run, Damage([broker_restart(activemq_server, (1, 2), crash=True), kill_9]))


def test_python_target_hanging_erring_and_malformed_loses_nothing(
        tmp_path: Path, redis_server: Any) -> None:
    # hangs past the 2 s timeout, 30% of invocations raising, 5% malformed responses
    kit = redis_kit(redis_server)
    knobs = {**FAILING, "HANG_PER_MILLE": "10", "HANG_SECONDS": "4",
             "ERROR_PER_MILLE": "300", "MALFORMED_PER_MILLE": "50"}
    run = ChaosRun(tmp_path, "redis target hangs/errors/malformed", kit, initial=1500,
                   feed_per_second=200, knobs=knobs)
    try:
        result = run.run(Damage([kill_9]))
    finally:
        kit.close()
    assert_clean(result)


def test_http_target_with_30_percent_invoke_errors_and_garbage_loses_nothing(
        tmp_path: Path, kafka_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    kit = kafka_kit(kafka_server)
    journal = tmp_path / "journal.jsonl"
    for knob, value in {**kit.knobs, **FAILING, "JOURNAL": str(journal)}.items():
        monkeypatch.setenv(f"ESM_CHAOS_{knob}", value)
    with DamageTargetServer(unavailable_per_mille=300, garbage_per_mille=30) as target:
        run = ChaosRun(tmp_path, "kafka http target 30% 503 + garbage", kit, initial=600,
                       feed_per_second=150,
                       target={"type": "http", "url": target.url, "timeout_seconds": 5})
        try:
            result = run.run(Damage([kill_9]))
        finally:
            kit.close()
    assert_clean(result)
    assert sum(target.calls.values()) > 0


@pytest.fixture
def destination_redis() -> Any:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


def test_destination_outage_stops_the_lane_and_acks_nothing_past_the_notice(
        tmp_path: Path, kafka_server: Any, destination_redis: RedisServer) -> None:
    kit = kafka_kit(kafka_server)
    group = kit.source["consumer_group_id"]
    dlq = f"dlq-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(destination_redis.url)
    # (stopping at ms, committed at its end, starting again at ms, started at ms)
    outages: list[tuple[float, dict[int, int], float, float]] = []

    def notices() -> list[dict[str, Any]]:
        return [orjson.loads(fields[b"body"]) for _, fields in client.xrange(dlq)]

    def outage(run: ChaosRun) -> None:
        stopped_ms = time.time() * 1000
        destination_redis.stop()
        time.sleep(run.rng.uniform(4, 6))
        committed = kafka_committed(kafka_server, group)
        starting_ms = time.time() * 1000
        destination_redis.start()
        outages.append((stopped_ms, committed, starting_ms, time.time() * 1000))

    run = ChaosRun(tmp_path, "kafka destination outage", kit, initial=2000,
                   feed_per_second=300, poison_per_mille=5, knobs=FAILING,
                   destination={"type": "redis_stream", "url": destination_redis.url,
                                "stream": dlq},
                   notices=notices)
    try:
        result = run.run(Damage([outage], gap_seconds=(2, 3)))
        assert_clean(result)
        # Then no poison record was committed past during the outage unless its notice
        # was written before the destination went down. Redis serves clients for up to
        # a cron tick after SIGTERM, so "before" is any entry older than the restart:
        # the server wrote nothing between its stop and then.
        [(stopped_ms, committed, starting_ms, started_ms)] = outages
        noticed = _notice_ids(client, dlq)
        noticed_before = {item_id for entry_ms, item_id in noticed if entry_ms < starting_ms}
        late = sorted(entry_ms - stopped_ms for entry_ms, _ in noticed
                      if stopped_ms <= entry_ms < starting_ms)
        skipped = [(r.id, kit.offsets[r.id]) for r in run.ledger.produced.values()
                   if r.poison and r.id in kit.offsets and r.id not in noticed_before
                   and kit.offsets[r.id][1] < committed.get(kit.offsets[r.id][0], 0)]
        written = {item_id: round(entry_ms - stopped_ms) for entry_ms, item_id in noticed}
        assert not skipped, (
            f"committed past undelivered notices: {skipped}; committed {committed}; their "
            f"notices written at ms from the stop: {[written.get(i) for i, _ in skipped]}; "
            f"restarted at {round(starting_ms - stopped_ms)}; notices written while the "
            f"stop went on, ms from it: {late}")
        # and the outage did hold some: poison records produced over a second before the
        # destination came back (the lane reads them in well under that), noticed after
        waited = [item_id for entry_ms, item_id in noticed if entry_ms > started_ms
                  and run.produced_at.get(item_id, float("inf")) * 1000 < started_ms - 1000]
        assert waited, "no notice waited for the destination: the outage tested nothing"
    finally:
        kit.close()
        client.close()


def _notice_ids(client: redis.Redis, stream: str) -> list[tuple[int, str]]:
    """(entry time in ms, record id) for every record in the notices' payloads."""
    out = []
    for entry_id, fields in client.xrange(stream):
        millis = int(entry_id.decode().partition("-")[0])
        payload = orjson.loads(fields[b"body"]).get("payload") or {}
        out.extend((millis, item.id) for item in event_items(payload))
    return out
