"""The benchmark consumers for SQS, RabbitMQ, ActiveMQ, Kinesis and DynamoDB Streams, run
by `python -m tests.bench.consumers CONTENDER KIND ...` like Redis's and Kafka's.

- esm: the whole daemon, no-op Python handler, batch BATCH; window 0 where AWS allows it,
  else 1 s (SQS, Kinesis, DynamoDB Streams need one above 10 records; a prefilled source
  fills each batch at once, and the counts divide into full batches);
- raw: the minimal consumer with esm's guarantees, acknowledging after handling a batch of
  BATCH: boto3 receive (10 a call, 5 threads as esm's 5 pollers) then delete; pika
  consume + one multiple ack a batch (prefetch 2 x batch); proton receive then accept
  (credit 500, esm's default); boto3 GetRecords per shard (up to 1,000 a call, as esm
  fetches) with each batch's last sequence number written to SQLite (WAL,
  synchronous=FULL, as esm's checkpoints) before the next, each shard read at esm's poll
  interval at most (the services' per-shard read limits);
- faststream (RabbitMQ only: FastStream has no SQS, AMQP 1.0, Kinesis or DynamoDB broker):
  a subscriber with a no-op handler, acking each message after it, prefetch 2 x batch.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.bench.consumers import cpu, mark, noop, report

KINDS = ("sqs", "rabbitmq", "activemq", "kinesis", "dynamodb")
REGION = "us-east-1"
AWS = f'region: {REGION}, access_key_id: test, secret_access_key: test'
SHARD_POLL_SECONDS = {"kinesis": 0.2, "dynamodb": 0.25}  # esm's minimum / its default
CONFIG = """
mappings:
  - name: bench
    source: {source}
    batch_size: {batch}
    maximum_batching_window_in_seconds: {window}
    target: {{type: python, handler: "tests.bench.consumers:noop", timeout_seconds: 10}}
server: {{enabled: false}}
"""


def esm_source(kind: str, address: str, key: str, workdir: Path) -> str:
    """The mapping's `source:` for `kind`, in YAML flow style."""
    if kind == "sqs":
        return f'{{type: sqs, queue_url: "{key}", endpoint_url: "{address}", {AWS}}}'
    if kind == "rabbitmq":
        url = urlsplit(address)
        os.environ["BENCH_RMQ_PASSWORD"] = url.password or ""
        plain = f"amqp://{url.username}@{url.hostname}:{url.port}{url.path}"
        return f'{{type: rabbitmq, url: "{plain}", queues: [{key}], ' \
               f'password_env: BENCH_RMQ_PASSWORD}}'
    if kind == "activemq":
        return f'{{type: activemq, url: "{address}", queue: {key}}}'
    source_type = "kinesis" if kind == "kinesis" else "dynamodb_streams"
    return (f'{{type: {source_type}, stream_arn: "{key}", endpoint_url: "{address}", {AWS}, '
            f'starting_position: TRIM_HORIZON, poll_interval_seconds: '
            f'{SHARD_POLL_SECONDS[kind]}, checkpoint: {{path: "{workdir}/checkpoints.db"}}}}')


def esm_run(kind: str, address: str, key: str, count: int, batch: int) -> None:
    from esm.config.loading import load_config
    from esm.runtime.daemon import Daemon
    from tests.bench.progress import wait_for_count
    window = 1 if kind in ("sqs", "kinesis", "dynamodb") and batch > 10 else 0
    counter = "committed" if kind in SHARD_POLL_SECONDS else "deleted"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(CONFIG.format(source=esm_source(kind, address, key, Path(tmp)),
                                      batch=batch, window=window))
        daemon = Daemon(load_config([str(path)], dict(os.environ)))
        mark()
        daemon.start()
        done = wait_for_count(daemon, counter, count, timeout_seconds=900)
        end_cpu, end = cpu(), time.perf_counter()
        daemon.shutdown()
    assert done >= count, f"esm: {done} of {count}"
    report(end, end_cpu)


def raw_sqs(address: str, key: str, count: int, batch: int) -> None:
    import boto3

    from tests.bench.bench_sqs import drain, pool_config
    client = boto3.client("sqs", endpoint_url=address, region_name=REGION,
                          aws_access_key_id="test", aws_secret_access_key="test",
                          config=pool_config(5))
    mark()
    drain(client, key, count, 5, batch, handle=lambda messages: noop(messages, None))
    report(time.perf_counter(), cpu())


def raw_rabbitmq(address: str, key: str, count: int, batch: int) -> None:
    import pika

    from tests.bench.bench_rabbitmq import drain
    connection = pika.BlockingConnection(pika.URLParameters(address))
    mark()
    drain(connection, key, count, batch)
    report(time.perf_counter(), cpu())
    connection.close()


def raw_activemq(address: str, key: str, count: int, batch: int) -> None:
    from tests.bench.bench_activemq import drain
    drain(address, key, count, credit=500, batch=batch, on_start=mark)
    report(time.perf_counter(), cpu())


class Checkpoints:
    """The raw shard loop's checkpoint table, written as esm's SQLite checkpoints are."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("CREATE TABLE checkpoints (shard TEXT PRIMARY KEY, sequence TEXT)")

    def save(self, shard: str, sequence: str) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO checkpoints VALUES (?, ?)",
                            (shard, sequence))


def raw_shards(kind: str, address: str, key: str, count: int, batch: int) -> None:
    import boto3
    service = "kinesis" if kind == "kinesis" else "dynamodbstreams"
    client = boto3.client(service, endpoint_url=address, region_name=REGION,
                          aws_access_key_id="test", aws_secret_access_key="test")
    with tempfile.TemporaryDirectory() as tmp:
        checkpoints = Checkpoints(Path(tmp) / "checkpoints.db")
        mark()
        iterators = _iterators(client, kind, key)
        due = dict.fromkeys(iterators, 0.0)
        sequence: Callable[[Any], str] = (
            (lambda r: r["SequenceNumber"]) if kind == "kinesis"
            else (lambda r: r["dynamodb"]["SequenceNumber"]))
        done = 0
        while done < count:
            shard = min(due, key=due.__getitem__)
            time.sleep(max(0.0, due[shard] - time.monotonic()))
            due[shard] = time.monotonic() + SHARD_POLL_SECONDS[kind]
            reply = client.get_records(ShardIterator=iterators[shard], Limit=1000)
            iterators[shard] = reply["NextShardIterator"]
            records = reply["Records"]
            for start in range(0, len(records), batch):
                chunk = records[start:start + batch]
                noop(chunk, None)
                checkpoints.save(shard, sequence(chunk[-1]))
                done += len(chunk)
        report(time.perf_counter(), cpu())


def _iterators(client: Any, kind: str, arn: str) -> dict[str, str]:
    """A TRIM_HORIZON iterator for every shard of the stream."""
    if kind == "kinesis":
        name = arn.rpartition("/")[2]
        shards = client.list_shards(StreamName=name)["Shards"]
        return {s["ShardId"]: client.get_shard_iterator(
            StreamName=name, ShardId=s["ShardId"],
            ShardIteratorType="TRIM_HORIZON")["ShardIterator"] for s in shards}
    shards = client.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    return {s["ShardId"]: client.get_shard_iterator(
        StreamArn=arn, ShardId=s["ShardId"],
        ShardIteratorType="TRIM_HORIZON")["ShardIterator"] for s in shards}


def faststream_rabbitmq(address: str, key: str, count: int, batch: int) -> None:
    from faststream import AckPolicy
    from faststream.rabbit import Channel, RabbitBroker, RabbitQueue
    done = asyncio.Event()
    seen = [0]

    async def handle(message: Any) -> None:
        noop(message, None)
        seen[0] += 1
        if seen[0] >= count:
            done.set()

    # logger=None: FastStream logs every message it handles at INFO otherwise, which alone
    # took ~45% of its CPU per message here (RabbitMQ hands it one message per call)
    broker = RabbitBroker(address, logger=None)
    broker.subscriber(RabbitQueue(key, durable=True), ack_policy=AckPolicy.ACK,
                      channel=Channel(prefetch_count=2 * batch))(handle)

    async def main() -> None:
        mark()
        await broker.start()
        await done.wait()
        report(time.perf_counter(), cpu())
        await broker.stop()

    asyncio.run(main())


def run(contender: str, kind: str, address: str, key: str, count: int, batch: int) -> None:
    if contender == "esm":
        esm_run(kind, address, key, count, batch)
    elif contender == "faststream" and kind == "rabbitmq":
        faststream_rabbitmq(address, key, count, batch)
    elif contender == "raw" and kind in SHARD_POLL_SECONDS:
        raw_shards(kind, address, key, count, batch)
    elif contender == "raw":
        {"sqs": raw_sqs, "rabbitmq": raw_rabbitmq, "activemq": raw_activemq}[kind](
            address, key, count, batch)
    else:
        raise SystemExit(f"no {contender} contender for {kind}")


CONTENDERS = {"sqs": ("esm", "raw"), "rabbitmq": ("esm", "raw", "faststream"),
              "activemq": ("esm", "raw"), "kinesis": ("esm", "raw"),
              "dynamodb": ("esm", "raw")}
