"""`esm run` with real brokers and the `lambda` target at AWS's Runtime Interface Emulator
running unmodified handlers (Powertools BatchProcessor, or one that always raises).

What "nothing lost" means here: every record either was processed successfully by the
function (its journal) and acked by the broker, or sits in the file on-failure destination
after its retries — and nothing was acked while the function was failing.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from kafka import KafkaProducer

from tests.contract.test_kafka_source import make_topic
from tests.integration import lambda_e2e_support as support
from tests.integration.kafka_e2e_support import group_behind, kafka_mapping
from tests.servers.kafka_server import KafkaServer, kafka_server  # noqa: F401
from tests.servers.lambda_rie_server import LambdaRie, StartRie, lambda_rie  # noqa: F401
from tests.servers.moto_server import MotoServer, moto_server  # noqa: F401
from tests.servers.redis_server import RedisServer, redis_server  # noqa: F401
from tests.servers.sqs_server import REGION, SqsServer, sqs_server  # noqa: F401

pytestmark = pytest.mark.integration


class Function:
    """An RIE-hosted handler whose record handlers journal to a file in tmp_path."""

    def __init__(self, start: StartRie, handler: str, tmp_path: Path) -> None:
        self.journal = tmp_path / f"function-{uuid.uuid4().hex[:6]}.jsonl"
        self.rie: LambdaRie = start(f"{support.FUNCTIONS}.{handler}",
                                    timeout_seconds=support.TIMEOUT,
                                    env={"ESM_E2E_JOURNAL": str(self.journal)})

    def target(self, **extra: Any) -> dict[str, Any]:
        return {"type": "lambda", "function_name": "function",
                "endpoint_url": self.rie.endpoint_url, "region": REGION,
                "timeout_seconds": support.TIMEOUT, **extra}

    def outcomes(self, outcome: str) -> list[str]:
        return support.journal_outcomes(self.journal, outcome)


# ---- Redis Streams ----------------------------------------------------------------------


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:  # noqa: F811
    c = redis.Redis.from_url(redis_server.url, decode_responses=True)
    yield c
    c.close()


def test_redis_powertools_failures_reach_the_destination_and_successes_are_acked(
        tmp_path: Path, redis_server: RedisServer, client: redis.Redis,  # noqa: F811
        lambda_rie: StartRie) -> None:  # noqa: F811
    # Given 30 entries, every 7th asking the Powertools handler to fail it
    stream = f"rie-{uuid.uuid4().hex[:8]}"
    bodies = {client.xadd(stream, {"body": "please fail" if n % 7 == 3 else f"ok {n}"}):
              n for n in range(30)}
    bad = {entry for entry, n in bodies.items() if n % 7 == 3}
    function = Function(lambda_rie, "sqs_batch", tmp_path)
    mapping = support.redis_mapping(redis_server.url, stream, function.target(), tmp_path)
    failures = tmp_path / "failures.jsonl"
    # When the daemon runs until the group has nothing pending
    def done() -> bool:
        return set(support.noticed_ids(failures)) >= bad \
            and support.pending_and_lag(client, stream) == (0, 0)
    support.run_until(tmp_path, mapping, done,
                      lambda: f"noticed {support.noticed_ids(failures)}, want {sorted(bad)}; "
                              f"group {support.pending_and_lag(client, stream)}")
    # Then each good entry was processed once, each bad one twice and then dead-lettered
    assert sorted(function.outcomes("ok")) == sorted(set(bodies) - bad)
    assert Counter(function.outcomes("fail")) == {entry: 2 for entry in bad}
    assert sorted(support.noticed_ids(failures)) == sorted(bad)


def test_redis_handler_raising_on_every_batch_is_retried_then_dead_lettered(
        tmp_path: Path, redis_server: RedisServer, client: redis.Redis,  # noqa: F811
        lambda_rie: StartRie) -> None:  # noqa: F811
    # Given the setup: a handler that raises on every batch, in RIE (no header)
    stream = f"rie-{uuid.uuid4().hex[:8]}"
    entries = [client.xadd(stream, {"body": f"order {n}"}) for n in range(12)]
    function = Function(lambda_rie, "raise_always", tmp_path)
    mapping = support.redis_mapping(redis_server.url, stream, function.target(), tmp_path)
    failures = tmp_path / "failures.jsonl"
    # When the daemon runs
    def done() -> bool:
        return sorted(support.noticed_ids(failures)) == sorted(entries) \
            and support.pending_and_lag(client, stream) == (0, 0)
    metrics = support.run_until(
        tmp_path, mapping, done,
        lambda: f"noticed {len(support.noticed_ids(failures))} of {len(entries)}; "
                f"group {support.pending_and_lag(client, stream)}")
    # Then every entry went to the destination as a function error after its deliveries,
    # none was acked as a success
    notices = support.read_notices(failures)
    assert {n["esm"]["errorType"] for n in notices} == {"ValueError"}
    assert {n["responseContext"]["functionError"] for n in notices} == {"Unhandled"}
    assert {n["requestContext"]["condition"] for n in notices} == {"MaxDeliveriesExceeded"}
    assert {r["attributes"]["deliveryCount"] for n in notices for r in n["payload"]["Records"]} \
        == {"2"}
    assert metrics.get("esm_on_failure_destination_delivered_events_total"
                       "{mapping=rie-redis}") == len(entries)


# ---- SQS (ElasticMQ) --------------------------------------------------------------------


def send_bodies(server: SqsServer, url: str, bodies: list[str]) -> list[str]:
    """Send in batches of 10; the message ids, in order."""
    client, ids = server.client(), []
    for start in range(0, len(bodies), 10):
        entries = [{"Id": str(n), "MessageBody": body}
                   for n, body in enumerate(bodies[start:start + 10])]
        reply = client.send_message_batch(QueueUrl=url, Entries=entries)
        assert not reply.get("Failed"), reply["Failed"]
        ids += [ok["MessageId"] for ok in sorted(reply["Successful"], key=lambda e: int(e["Id"]))]
    return ids


def queue_is_empty(server: SqsServer, url: str) -> bool:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attrs = server.client().get_queue_attributes(QueueUrl=url, AttributeNames=names)
    return not any(int(attrs["Attributes"].get(name, "0")) for name in names)


def test_sqs_powertools_failures_are_redelivered_then_dead_lettered(
        tmp_path: Path, sqs_server: SqsServer, lambda_rie: StartRie) -> None:  # noqa: F811
    # Given 40 messages, every 9th asking the Powertools handler to fail it, five slots of
    # concurrent batches and one emulator that serves one invocation at a time
    url = sqs_server.create_queue(visibility_timeout=support.TIMEOUT)
    bodies = ["please fail" if n % 9 == 4 else f"order {n}" for n in range(40)]
    ids = send_bodies(sqs_server, url, bodies)
    bad = {i for i, body in zip(ids, bodies, strict=True) if "fail" in body}
    function = Function(lambda_rie, "sqs_batch", tmp_path)
    mapping = {
        "name": "rie-sqs",
        "source": {"type": "sqs", "queue_url": url, "endpoint_url": sqs_server.endpoint_url,
                   "region": REGION, "visibility_timeout_seconds": support.TIMEOUT,
                   "max_receive_count": 2, "backoff_on_failure": True, "pollers": 2,
                   "wait_time_seconds": 1},
        "batch_size": 10,
        "function_response_types": ["ReportBatchItemFailures"],
        "scaling_config": {"maximum_concurrency": 5},
        "retry_backoff": support.FAST_RETRIES,
        "target": function.target(max_concurrent_invocations=1),
        "destination_config": support.file_destination(tmp_path),
    }
    failures = tmp_path / "failures.jsonl"
    # When the daemon runs until the queue is empty
    def done() -> bool:
        return set(support.noticed_ids(failures)) >= bad and queue_is_empty(sqs_server, url)
    support.run_until(tmp_path, mapping, done,
                      lambda: f"noticed {support.noticed_ids(failures)}, want {sorted(bad)}", 90)
    # Then the good messages were processed (and deleted), the bad ones failed on each
    # receive and were dead-lettered after the second; the emulator never crashed
    assert set(function.outcomes("ok")) == set(ids) - bad
    assert Counter(function.outcomes("fail")) == {i: 2 for i in bad}
    assert sorted(support.noticed_ids(failures)) == sorted(bad)
    assert function.rie.running()


# ---- Kinesis (moto) ---------------------------------------------------------------------


def test_kinesis_powertools_failure_is_retried_then_dead_lettered_and_the_shard_moves_on(
        tmp_path: Path, moto_server: MotoServer, lambda_rie: StartRie) -> None:  # noqa: F811
    # Given 20 records on one shard, the 6th asking the Powertools handler to fail it
    name, _ = moto_server.create_kinesis_stream()
    kinesis = moto_server.client("kinesis")
    sequence = [kinesis.put_record(StreamName=name, PartitionKey="k",
                                   Data=(b"please fail" if n == 5 else b"click %d" % n)
                                   )["SequenceNumber"] for n in range(20)]
    bad = sequence[5]
    function = Function(lambda_rie, "kinesis_batch", tmp_path)
    mapping = {
        "name": "rie-kinesis",
        "source": {"type": "kinesis", "stream_name": name, "starting_position": "TRIM_HORIZON",
                   "endpoint_url": moto_server.endpoint_url, "region": REGION,
                   "poll_interval_seconds": 0.2,
                   "checkpoint": {"type": "sqlite", "path": str(tmp_path / "cp.sqlite")}},
        "batch_size": 10,
        "function_response_types": ["ReportBatchItemFailures"],
        "maximum_retry_attempts": 1,
        "retry_backoff": support.FAST_RETRIES,
        "target": function.target(),
        "destination_config": support.file_destination(tmp_path),
    }
    failures = tmp_path / "failures.jsonl"
    # When the daemon runs until every good record was processed
    def done() -> bool:
        return set(function.outcomes("ok")) >= set(sequence) - {bad} \
            and bad in support.noticed_ids(failures, "kinesis")
    support.run_until(tmp_path, mapping, done,
                      lambda: f"ok {len(set(function.outcomes('ok')))} of 19, noticed "
                              f"{support.noticed_ids(failures, 'kinesis')}", 90)
    # Then the failing record was tried 1 + maximum_retry_attempts times, then its notice
    # was written and the records after it were processed: nothing lost, the lane moved on
    assert Counter(function.outcomes("fail"))[bad] == 2
    assert set(support.noticed_ids(failures, "kinesis")) <= set(sequence[5:10])
    assert {n["esm"]["errorType"] for n in support.read_notices(failures)} == {"BatchItemFailures"}


# ---- Kafka ------------------------------------------------------------------------------


def test_kafka_powertools_failure_is_retried_then_dead_lettered_and_offsets_commit(
        tmp_path: Path, kafka_server: KafkaServer, lambda_rie: StartRie) -> None:  # noqa: F811
    # Given 30 records over 2 partitions, two of them asking the Powertools handler to fail
    topic, group = make_topic(kafka_server, 2), f"g-{uuid.uuid4().hex[:8]}"
    producer = KafkaProducer(bootstrap_servers=kafka_server.bootstrap)
    sent = [producer.send(topic, value=b"please fail" if n in (7, 20) else b"order %d" % n,
                          partition=n % 2) for n in range(30)]
    producer.flush(30)
    producer.close()
    ids = [f"{topic}-{m.partition}@{m.offset}" for m in (f.get(30) for f in sent)]
    bad = {ids[7], ids[20]}
    function = Function(lambda_rie, "kafka_batch", tmp_path)
    mapping = kafka_mapping(kafka_server, topic, group, name="rie-kafka", batch_size=10,
                            function_response_types=["ReportBatchItemFailures"],
                            maximum_retry_attempts=1, retry_backoff=support.FAST_RETRIES,
                            target=function.target(max_concurrent_invocations=1),
                            destination_config=support.file_destination(tmp_path))
    failures = tmp_path / "failures.jsonl"

    # When the daemon runs until every good record was processed and offsets committed
    def done() -> bool:
        return set(function.outcomes("ok")) >= set(ids) - bad \
            and set(support.noticed_ids(failures, "kafka")) >= bad \
            and not group_behind(kafka_server, topic, group)
    support.run_until(tmp_path, mapping, done,
                      lambda: f"ok {len(set(function.outcomes('ok')))} of 28, noticed "
                              f"{support.noticed_ids(failures, 'kafka')}, behind "
                              f"{group_behind(kafka_server, topic, group)}", 120)
    # Then each failing record was tried 1 + maximum_retry_attempts times; its notice holds
    # the rest of its batch from it on (a stream discards the batch it retried, as AWS does)
    # and the partitions moved on past it
    fails = Counter(function.outcomes("fail"))
    assert {i: fails[i] for i in bad} == {i: 2 for i in bad}
    first_bad = {i.rpartition("@")[0]: int(i.rpartition("@")[2]) for i in bad}
    for noticed in support.noticed_ids(failures, "kafka"):
        lane, _, offset = noticed.rpartition("@")
        assert first_bad[lane] <= int(offset) < first_bad[lane] + 10, noticed


# ---- DynamoDB Streams (moto) ------------------------------------------------------------


def test_dynamodb_handler_raising_on_every_batch_is_retried_then_dead_lettered(
        tmp_path: Path, moto_server: MotoServer, lambda_rie: StartRie) -> None:  # noqa: F811
    # Given 6 inserts and the handler, raising on every batch, on a stream source
    table, stream_arn = moto_server.create_table_with_stream()
    dynamodb = moto_server.client("dynamodb")
    for n in range(6):
        dynamodb.put_item(TableName=table, Item={"id": {"S": f"item-{n}"}})
    function = Function(lambda_rie, "raise_always", tmp_path)
    mapping = {
        "name": "rie-dynamodb",
        "source": {"type": "dynamodb_streams", "stream_arn": stream_arn,
                   "starting_position": "TRIM_HORIZON", "region": REGION,
                   "endpoint_url": moto_server.endpoint_url, "poll_interval_seconds": 0.2,
                   "checkpoint": {"type": "sqlite", "path": str(tmp_path / "cp.sqlite")}},
        "batch_size": 10,
        "maximum_retry_attempts": 2,
        "retry_backoff": support.FAST_RETRIES,
        "target": function.target(),
        "destination_config": support.file_destination(tmp_path),
    }
    failures = tmp_path / "failures.jsonl"

    def noticed_keys() -> list[str]:
        return [r["dynamodb"]["Keys"]["id"]["S"] for n in support.read_notices(failures)
                for r in n["payload"]["Records"]]
    # When the daemon runs until every insert is in a notice
    support.run_until(tmp_path, mapping,
                      lambda: sorted(noticed_keys()) == [f"item-{n}" for n in range(6)],
                      lambda: f"noticed {noticed_keys()}")
    # Then they got there as the function's error after 1 + maximum_retry_attempts calls
    notices = support.read_notices(failures)
    assert {n["esm"]["errorType"] for n in notices} == {"ValueError"}
    assert {n["requestContext"]["approximateInvokeCount"] for n in notices} == {3}
    assert {n["responseContext"]["functionError"] for n in notices} == {"Unhandled"}
