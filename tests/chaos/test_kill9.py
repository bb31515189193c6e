"""Every source: the daemon killed with SIGKILL at random moments under load, while the
handler fails poison records every time and names others in batchItemFailures now and
then. Short run: 3 kills per source; long run (ESM_CHAOS=long): 20."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.chaos.harness import ChaosRun, Damage, assert_clean, kill_9, kills, run_checked
from tests.chaos.kits import (
    activemq_kit,
    dynamodb_kit,
    kafka_kit,
    kinesis_kit,
    rabbitmq_kit,
    redis_kit,
    sqs_kit,
)

PARTIAL = {"PARTIAL_PER_MILLE": "30", "SLEEP_SECONDS": "0.02"}


def test_kafka_kill_9_under_load_loses_nothing(tmp_path: Path, kafka_server: Any) -> None:
    kit = kafka_kit(kafka_server)
    run = ChaosRun(tmp_path, "kafka kill -9", kit, initial=1500, feed_per_second=300,
                   knobs=PARTIAL)
    assert_clean(run.run(Damage([kill_9] * kills(3), gap_seconds=(1.5, 3))))
    kit.close()


def test_redis_kill_9_under_load_loses_nothing_and_dead_letters_no_healthy_entry(
        tmp_path: Path, redis_server: Any) -> None:
    # a backlog and a slow handler: each killed daemon strands what it read ahead; with
    # max_deliveries 2, two kills used to dead-letter such entries uninvoked
    kit = redis_kit(redis_server, max_deliveries=2)
    run = ChaosRun(tmp_path, "redis kill -9", kit, initial=kills(5000, 10000),
                   feed_per_second=300, knobs={**PARTIAL, "SLEEP_SECONDS": "0.05"})
    result = run.run(Damage([kill_9] * kills(3)))
    assert_clean(result)
    # read-ahead stranded by each kill is reclaimed, not brought closer to max_deliveries
    assert not result.uninvoked_healthy, result.anomalies()
    kit.close()


def test_sqs_standard_kill_9_under_load_loses_nothing(tmp_path: Path, sqs_server: Any) -> None:
    run = ChaosRun(tmp_path, "sqs kill -9", sqs_kit(sqs_server, fifo=False), initial=600,
                   feed_per_second=100, knobs=PARTIAL)
    assert_clean(run.run(Damage([kill_9] * kills(3))))


def test_sqs_fifo_kill_9_under_load_loses_nothing_and_keeps_group_order(
        tmp_path: Path, sqs_server: Any) -> None:
    run = ChaosRun(tmp_path, "sqs-fifo kill -9", sqs_kit(sqs_server, fifo=True), initial=400,
                   feed_per_second=60, knobs=PARTIAL)
    assert_clean(run.run(Damage([kill_9] * kills(3))))


def test_dynamodb_streams_kill_9_under_load_loses_nothing(tmp_path: Path,
                                                         moto_server: Any) -> None:
    run = ChaosRun(tmp_path, "dynamodb kill -9", dynamodb_kit(moto_server, tmp_path),
                   initial=120, feed_per_second=40, knobs=PARTIAL)
    assert_clean(run.run(Damage([kill_9] * kills(3))))


def test_kinesis_kill_9_under_load_loses_nothing(tmp_path: Path, moto_server: Any) -> None:
    run = ChaosRun(tmp_path, "kinesis kill -9", kinesis_kit(moto_server, tmp_path),
                   initial=600, feed_per_second=150, knobs=PARTIAL)
    assert_clean(run.run(Damage([kill_9] * kills(3))))


@pytest.mark.parametrize("quorum", [False, True], ids=["classic", "quorum"])
def test_rabbitmq_kill_9_under_load_loses_nothing_and_dead_letters_no_healthy_message(
        tmp_path: Path, rabbitmq_server: Any, quorum: bool) -> None:
    # a backlog and a slow handler: each kill returns the prefetched messages. Quorum
    # queues count every return in x-delivery-count, a kill's included: with
    # max_deliveries 3, three kills used to dead-letter such messages uninvoked
    kit = rabbitmq_kit(rabbitmq_server, quorum=quorum)
    run = ChaosRun(tmp_path, f"{kit.name} kill -9", kit, initial=kills(1200, 8000),
                   feed_per_second=200, knobs={**PARTIAL, "SLEEP_SECONDS": "0.05"})
    run_checked(run, Damage([kill_9] * kills(3), gap_seconds=(0.8, 2)))


def test_activemq_kill_9_under_load_loses_nothing(tmp_path: Path, activemq_server: Any) -> None:
    run = ChaosRun(tmp_path, "activemq kill -9", activemq_kit(activemq_server), initial=600,
                   feed_per_second=150, knobs={"SLEEP_SECONDS": "0.02"})
    run_checked(run, Damage([kill_9] * kills(3), gap_seconds=(0.8, 2)))
