"""Replicas in one group under churn.

- Kafka: the scenario of the issue that found records lost on consumer-group churn: 2
  replicas in one group, 4 partitions, batch 100, bisect, ReportBatchItemFailures,
  maximum_retry_attempts 2, a file on-failure destination; a handler failing poison records
  every time and others now and then; replicas killed (-9) or stopped (SIGTERM) and
  restarted at once while batches are being retried. Short run: one run of 4 churns; long
  run: 20 consecutive runs of 12.
- Redis Streams (2 replicas in one consumer group) and RabbitMQ (2 replicas competing for
  the same queues): kill -9 churn.
- DynamoDB Streams and Kinesis: 2 replicas sharing a DynamoDB lease table, one killed for
  good (its leases expire and the other takes its shards from their checkpoints).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.chaos.harness import (
    ChaosRun,
    Damage,
    assert_clean,
    churn,
    kill_9,
    kills,
    long_run,
    run_checked,
)
from tests.chaos.kits import dynamodb_kit, kafka_kit, kinesis_kit, rabbitmq_kit, redis_kit

FAILING = {"PARTIAL_PER_MILLE": "30", "SLEEP_SECONDS": "0.05"}


@pytest.mark.parametrize("run_number", range(20 if long_run() else 1))
def test_kafka_replicas_churning_while_batches_are_retried_lose_nothing(
        tmp_path: Path, kafka_server: Any, run_number: int) -> None:
    kit = kafka_kit(kafka_server, partitions=4, batch_size=100)
    run = ChaosRun(tmp_path, f"kafka 2 replicas churn #{run_number}", kit, replicas=2,
                   initial=4000, feed_per_second=400, poison_per_mille=5, knobs=FAILING)
    try:
        assert_clean(run.run(Damage([churn] * kills(4, 12), gap_seconds=(1.5, 4))))
    finally:
        kit.close()


@pytest.mark.parametrize("source", ["redis", "rabbitmq"])
def test_queue_replicas_competing_under_kill_9_lose_nothing(
        tmp_path: Path, request: pytest.FixtureRequest, source: str) -> None:
    server = request.getfixturevalue(f"{source}_server")
    kit, initial = (redis_kit(server), 2000) if source == "redis" else (rabbitmq_kit(server), 800)
    run = ChaosRun(tmp_path, f"{source} 2 replicas kill -9", kit, replicas=2, initial=initial,
                   feed_per_second=300 if source == "redis" else 200, knobs=FAILING)
    run_checked(run, Damage([kill_9] * kills(3)))


LEASE_SECONDS = 3  # kits.py: lease_duration_seconds of the lease table


def _one_replica_killed_for_good(run: ChaosRun) -> None:
    """kill -9 replica 1 and leave it dead while records keep coming, long enough for its
    leases to expire and the survivor to take its shards (the harness starts it again only
    when it settles the run)."""
    run.daemons[1].kill()
    run.ledger.kills += 1
    time.sleep(2 * LEASE_SECONDS)


@pytest.mark.parametrize("source", ["kinesis", "dynamodb"])
def test_shard_replicas_sharing_a_lease_table_survive_one_killed(
        tmp_path: Path, moto_server: Any, source: str) -> None:
    leases = f"leases-{uuid.uuid4().hex[:8]}"
    if source == "kinesis":
        kit = kinesis_kit(moto_server, tmp_path, leases=leases, shards=2)
        initial, rate = 1000, 200
    else:
        kit = dynamodb_kit(moto_server, tmp_path, leases=leases)
        initial, rate = 300, 60
    run = ChaosRun(tmp_path, f"{source} 2 replicas lease table, one killed", kit, replicas=2,
                   initial=initial, feed_per_second=rate, knobs=FAILING)
    assert_clean(run.run(Damage([_one_replica_killed_for_good], gap_seconds=(3, 5))))
