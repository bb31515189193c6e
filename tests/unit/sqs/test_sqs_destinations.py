"""SQS and SNS on-failure destinations against moto's in-process AWS mock."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from connectors.aws.sns import SnsDestination, SnsDestinationSettings
from connectors.sqs.destination import SqsDestination, SqsDestinationSettings
from esm.clock import FakeClock
from esm.errors import DestinationError
from esm.interfaces import ConnectorContext

KEYS = {"region": "us-east-1", "access_key_id": "test", "secret_access_key": "test"}
NOTICE = {"requestContext": {"condition": "MaxDeliveriesExceeded"}, "version": "1.0",
          "SQSBatchInfo": {"batchSize": 1}, "payload": {"Records": [{"body": "x" * 2000}]}}


@pytest.fixture()
def aws() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("sqs", region_name="us-east-1")


def context() -> ConnectorContext:
    return ConnectorContext("orders", threading.Event(), FakeClock())


def test_sqs_destination_sends_notice_as_json_message(aws: Any) -> None:
    url = aws.create_queue(QueueName="dlq")["QueueUrl"]
    destination = SqsDestination(SqsDestinationSettings(queue_url=url, **KEYS), context())
    destination.send(NOTICE, [])
    body = aws.receive_message(QueueUrl=url)["Messages"][0]["Body"]
    assert json.loads(body) == NOTICE
    destination.close()


def test_sqs_destination_uses_mapping_as_group_on_fifo_queues(aws: Any) -> None:
    url = aws.create_queue(QueueName="dlq.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    destination = SqsDestination(SqsDestinationSettings(queue_url=url, **KEYS), context())
    destination.send(NOTICE, [])
    destination.send(NOTICE, [])  # a second identical notice is not deduplicated away
    got = aws.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                              AttributeNames=["MessageGroupId"])["Messages"]
    assert len(got) >= 1 and got[0]["Attributes"]["MessageGroupId"] == "orders"


def test_oversized_notice_keeps_metadata_and_drops_payload(aws: Any) -> None:
    url = aws.create_queue(QueueName="small")["QueueUrl"]
    settings = SqsDestinationSettings(queue_url=url, max_message_bytes=1024, **KEYS)
    SqsDestination(settings, context()).send(NOTICE, [])
    body = json.loads(aws.receive_message(QueueUrl=url)["Messages"][0]["Body"])
    assert "payload" not in body and "payloadOmitted" in body
    assert body["SQSBatchInfo"] == {"batchSize": 1}


def test_send_to_missing_queue_raises_destination_error(aws: Any) -> None:
    url = "https://sqs.us-east-1.amazonaws.com/123456789012/missing"
    destination = SqsDestination(SqsDestinationSettings(queue_url=url, **KEYS), context())
    with pytest.raises(DestinationError, match="SendMessage to .*missing"):
        destination.send(NOTICE, [])


def test_sns_destination_publishes_notice_to_topic(aws: Any) -> None:
    sns = boto3.client("sns", region_name="us-east-1")
    topic = sns.create_topic(Name="failures")["TopicArn"]
    url = aws.create_queue(QueueName="sub")["QueueUrl"]
    arn = aws.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn["Attributes"]["QueueArn"],
                  Attributes={"RawMessageDelivery": "true"})
    destination = SnsDestination(SnsDestinationSettings(topic_arn=topic, **KEYS), context())
    destination.send(NOTICE, [])
    assert json.loads(aws.receive_message(QueueUrl=url)["Messages"][0]["Body"]) == NOTICE


def test_sns_publish_failure_raises_destination_error(aws: Any) -> None:
    topic = "arn:aws:sns:us-east-1:123456789012:nope"
    destination = SnsDestination(SnsDestinationSettings(topic_arn=topic, **KEYS), context())
    with pytest.raises(DestinationError, match="Publish to"):
        destination.send(NOTICE, [])
