"""Prefilled sources for `python -m tests.bench` beyond Redis and Kafka: SQS, RabbitMQ,
ActiveMQ, Kinesis and DynamoDB Streams, each on its test server from tests/servers.

Each context manager starts its server, then yields `(address, key)`. A stream (Kinesis,
DynamoDB Streams) is filled once and every contender reads it from TRIM_HORIZON with a
checkpoint of its own, so `key` is the stream ARN. A queue is emptied by whoever reads it,
so there `key` is a function that makes and fills a fresh queue, called before each run:
every contender reads the same count of the same messages.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager as ContextManager
from contextlib import contextmanager
from typing import Any

import orjson

Key = str | Callable[[], str]
KINESIS_SHARDS = 2


@contextmanager
def queue_source(server: Any, address: str, fill: Callable[[str], None],
                 new_queue: Callable[[], str]) -> Iterator[tuple[str, Key]]:
    """Start `server`; yield its `address` and a function making a queue (`new_queue`)
    that `fill` has filled; clean the server up after."""
    server.start()

    def fresh() -> str:
        queue = new_queue()
        fill(queue)
        return queue

    try:
        yield address, fresh
    finally:
        server.cleanup()


def _queue_name() -> str:
    return f"bench-{uuid.uuid4().hex[:6]}"


def sqs_source(count: int) -> ContextManager[tuple[str, Key]]:
    from tests.bench.bench_sqs import fill
    from tests.servers.sqs_server import SqsServer
    server = SqsServer()
    return queue_source(server, server.endpoint_url, lambda url: fill(server, url, count),
                        server.create_queue)


def rabbitmq_source(count: int) -> ContextManager[tuple[str, Key]]:
    from tests.bench.bench_rabbitmq import produce
    from tests.servers.rabbitmq_server import RabbitMQServer
    server = RabbitMQServer()
    return queue_source(server, server.url_with_password,
                        lambda queue: produce(server, queue, count), _queue_name)


def activemq_source(count: int) -> ContextManager[tuple[str, Key]]:
    from tests.bench.bench_activemq import fill
    from tests.servers.activemq_server import ActiveMQServer
    server = ActiveMQServer()
    return queue_source(server, server.url, lambda queue: fill(server, queue, count),
                        _queue_name)


@contextmanager
def moto_server() -> Iterator[Any]:
    from tests.servers.moto_server import MotoServer
    server = MotoServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def kinesis_source(count: int) -> Iterator[tuple[str, Key]]:
    """A stream of `KINESIS_SHARDS` shards, records spread evenly over them by explicit
    hash key (so each shard ends on a full batch when `count` allows)."""
    with moto_server() as server:
        name, arn = server.create_kinesis_stream(KINESIS_SHARDS)
        client = server.client("kinesis")
        step = 2**128 // KINESIS_SHARDS
        for start in range(0, count, 500):
            entries = [{"Data": _body(n), "PartitionKey": str(n),
                        "ExplicitHashKey": str((n % KINESIS_SHARDS) * step + step // 2)}
                       for n in range(start, min(start + 500, count))]
            reply = client.put_records(StreamName=name, Records=entries)
            assert not reply.get("FailedRecordCount"), reply
        yield server.endpoint_url, arn


@contextmanager
def dynamodb_source(count: int) -> Iterator[tuple[str, Key]]:
    """A table with a NEW_IMAGE stream and `count` items written to it (25 a request)."""
    with moto_server() as server:
        table, arn = server.create_table_with_stream("NEW_IMAGE")
        client = server.client("dynamodb")
        for start in range(0, count, 25):
            requests = [{"PutRequest": {"Item": {"id": {"S": str(n)},
                                                 "doc": {"S": _body(n).decode()}}}}
                        for n in range(start, min(start + 25, count))]
            reply = client.batch_write_item(RequestItems={table: requests})
            assert not reply.get("UnprocessedItems"), reply
        yield server.endpoint_url, arn


def _body(n: int) -> bytes:
    return orjson.dumps({"type": "order", "id": n, "amount": n % 97})
