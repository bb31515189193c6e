# ruff: noqa: F811  (pytest fixtures imported explicitly, per the harness convention)
"""S3Destination against moto's S3: AWS's object key layout, the notice (with `payload`) as
the object body, thread safety, and a missing bucket as a DestinationError (ESM-SPEC §4.5,
checklist 55)."""

from __future__ import annotations

import re
import threading
import uuid
from typing import Any

import orjson
import pytest

from connectors.aws.s3 import S3Destination, S3DestinationSettings
from esm.clock import FakeClock
from esm.errors import DestinationError
from esm.interfaces import ConnectorContext
from esm.records import Record
from tests.servers.moto_server import CREDENTIALS, REGION, MotoServer, moto_server  # noqa: F401

# 2023-11-14T22:13:20Z
AT = 1_700_000_000.0
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def destination(server: MotoServer, bucket: str, mapping: str = "orders",
                **extra: Any) -> S3Destination:
    settings = S3DestinationSettings(
        bucket=bucket, endpoint_url=server.endpoint_url, region=REGION,
        access_key_id=CREDENTIALS["aws_access_key_id"],
        secret_access_key=CREDENTIALS["aws_secret_access_key"], **extra)
    return S3Destination(settings, ConnectorContext(mapping, threading.Event(), FakeClock(AT)))


def kinesis_notice(shard: str = "shardId-000000000001") -> dict[str, Any]:
    event = {"Records": [{"kinesis": {"sequenceNumber": "4959", "data": "aGk="},
                          "eventSource": "aws:kinesis"}]}
    return {
        "requestContext": {"requestId": str(uuid.uuid4()), "condition": "RetryAttemptsExhausted",
                           "approximateInvokeCount": 3,
                           "functionArn": "arn:aws:lambda:us-east-1:000000000000:function:f"},
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST",
                            "functionError": "Unhandled"},
        "version": "1.0", "timestamp": "2023-11-14T22:13:20.000Z",
        "KinesisBatchInfo": {"shardId": shard, "startSequenceNumber": "4959",
                             "endSequenceNumber": "4959", "batchSize": 1},
        "payload": event}


def objects(server: MotoServer, bucket: str) -> dict[str, dict[str, Any]]:
    s3 = server.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    return {k: orjson.loads(s3.get_object(Bucket=bucket, Key=k)["Body"].read()) for k in keys}


def test_notice_is_written_under_the_aws_key_layout_with_its_payload(moto_server: MotoServer):
    # Given a bucket and an S3 destination for mapping "orders"
    bucket = moto_server.create_bucket()
    dest = destination(moto_server, bucket)
    notice = kinesis_notice()
    # When a Kinesis notice is sent
    try:
        dest.send(notice, [])
    finally:
        dest.close()
    # Then one object holds it, keyed aws/lambda/<ESM UUID>/<shardId>/YYYY/MM/DD/
    # YYYY-MM-DDTHH.MM.SS-<random UUID> (ESM-SPEC §4.5), and its body carries `payload`
    [(key, body)] = objects(moto_server, bucket).items()
    pattern = (rf"aws/lambda/({UUID})/shardId-000000000001/2023/11/14/"
               rf"2023-11-14T22\.13\.20-({UUID})")
    match = re.fullmatch(pattern, key)
    assert match is not None, key
    assert match.group(1) == dest.mapping_uuid
    assert body == notice
    assert body["payload"]["Records"][0]["kinesis"]["sequenceNumber"] == "4959"


def test_the_esm_uuid_is_stable_per_mapping_and_can_be_set(moto_server: MotoServer):
    # Given two destinations of one mapping (a restart), one of another, one with an UUID set
    bucket = moto_server.create_bucket()
    first, again = destination(moto_server, bucket), destination(moto_server, bucket)
    other = destination(moto_server, bucket, mapping="billing")
    fixed = str(uuid.uuid4())
    explicit = destination(moto_server, bucket, mapping_uuid=fixed)
    # When a DynamoDB notice is sent through the explicit one
    ddb = {"requestContext": {"condition": "RecordAgeExceeded"}, "version": "1.0",
           "DDBStreamBatchInfo": {"shardId": "shardId-00000001700000000000-abcd"}}
    try:
        explicit.send(ddb, [])
    finally:
        explicit.close()
    # Then the derived UUID survives restarts and differs per mapping, and the set one is used
    assert first.mapping_uuid == again.mapping_uuid != other.mapping_uuid
    assert uuid.UUID(first.mapping_uuid)
    [key] = objects(moto_server, bucket)
    assert key.startswith(f"aws/lambda/{fixed}/shardId-00000001700000000000-abcd/2023/11/14/")


def test_notice_without_a_shard_is_keyed_by_the_lane_of_its_records(moto_server: MotoServer):
    # Given a Kafka-style notice, which names no shardId
    bucket = moto_server.create_bucket()
    record = Record(lane="orders-3", position="7", item_id="7", payload={}, size_bytes=2,
                    timestamp=AT)
    dest = destination(moto_server, bucket)
    # When it is sent / Then the key's shard part is the records' lane
    try:
        dest.send({"KafkaBatchInfo": {"batchSize": 1}}, [record])
    finally:
        dest.close()
    [key] = objects(moto_server, bucket)
    assert key.split("/")[3] == "orders-3"


def test_concurrent_sends_from_lane_workers_each_become_one_object(moto_server: MotoServer):
    # Given one destination shared by eight lane-worker threads
    bucket = moto_server.create_bucket()
    dest = destination(moto_server, bucket)
    threads = [threading.Thread(target=dest.send, args=(kinesis_notice(f"shardId-{i}"), []))
               for i in range(8)]
    # When they send at once
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dest.close()
    # Then every notice is one object under its own shard
    stored = objects(moto_server, bucket)
    assert sorted(k.split("/")[3] for k in stored) == [f"shardId-{i}" for i in range(8)]


def test_missing_bucket_is_a_destination_error_naming_the_bucket(moto_server: MotoServer):
    # Given a destination whose bucket does not exist
    dest = destination(moto_server, "esm-no-such-bucket")
    # When a notice is sent / Then it is not durable, and the error says which bucket
    with pytest.raises(DestinationError, match=r"s3://esm-no-such-bucket/.*NoSuchBucket"):
        dest.send(kinesis_notice(), [])
    dest.close()
