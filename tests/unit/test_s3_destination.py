"""S3 destination: AWS's object key layout and a durable PutObject of the whole notice."""

from __future__ import annotations

import threading
from typing import Any

import orjson
import pytest

from connectors.aws.s3 import S3Destination, S3DestinationSettings, object_key
from esm.clock import FakeClock
from esm.errors import DestinationError
from esm.interfaces import ConnectorContext


class FakeS3:
    def __init__(self, fail: bool = False) -> None:
        self.puts: list[dict[str, Any]] = []
        self.fail = fail

    def put_object(self, **params: Any) -> None:
        if self.fail:
            raise RuntimeError("connection refused")
        self.puts.append(params)


def destination(client: FakeS3) -> S3Destination:
    context = ConnectorContext("orders", threading.Event(), FakeClock(start=1573691886.0))
    return S3Destination(S3DestinationSettings(bucket="dlq-bucket", region="us-east-1"),
                         context, client=client)


def test_object_key_follows_the_aws_layout():
    # Given a time and ids / When the key is built / Then it matches ESM-SPEC §4.5
    key = object_key("uuid-1", "shardId-000000000001", 1573691886.0, "r-1")
    assert key == "aws/lambda/uuid-1/shardId-000000000001/2019/11/14/2019-11-14T00.38.06-r-1"


def test_puts_the_whole_notice_under_the_shard_of_its_batch_info():
    # Given a notice with DDBStreamBatchInfo and a payload
    s3 = FakeS3()
    notice = {"DDBStreamBatchInfo": {"shardId": "shardId-7"}, "payload": {"Records": [1]}}
    # When it is sent
    destination(s3).send(notice, [])
    # Then one object holds it, keyed by the mapping's stable UUID and the shard
    [put] = s3.puts
    assert put["Bucket"] == "dlq-bucket" and orjson.loads(put["Body"]) == notice
    assert put["Key"].startswith(f"aws/lambda/{destination(s3).mapping_uuid}/shardId-7/2019/11/14/")


def test_a_failed_put_raises_destination_error():
    # Given an S3 that refuses writes / When a notice is sent / Then it is not durable
    with pytest.raises(DestinationError, match="PutObject s3://dlq-bucket"):
        destination(FakeS3(fail=True)).send({"x": 1}, [])
