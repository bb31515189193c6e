"""Event source ARN and source parameters → an esm `source:` block (SQS, Kinesis, DynamoDB).

Kafka (MSK and self-managed) is in `kafka_source`, Amazon MQ in `mq_source`. Each builder
takes its parameters from the `Translation`; what it cannot carry it notes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from esm.aws_import.arns import (
    SOURCE_KINDS,
    parse_arn,
    queue_at,
    queue_url,
    stream_of_consumer,
)
from esm.aws_import.intrinsics import Symbol
from esm.aws_import.translate.translation import Translation

RESOURCE_KINDS = {"AWS::SQS::Queue": "sqs", "AWS::Kinesis::Stream": "kinesis",
                  "AWS::DynamoDB::Table": "dynamodb", "AWS::MSK::Cluster": "msk",
                  "AWS::MSK::ServerlessCluster": "msk", "AWS::AmazonMQ::Broker": "mq"}
STREAM_KINDS = ("kinesis", "dynamodb", "msk", "kafka")
ESM_TYPES = {"sqs": "sqs", "kinesis": "kinesis", "dynamodb": "dynamodb_streams",
             "msk": "kafka", "kafka": "kafka"}


def source_kind(t: Translation) -> str | None:
    """sqs, kinesis, dynamodb, msk, kafka or mq; None when nothing tells."""
    if t.aws.kind:
        return t.aws.kind
    if t.peek("SelfManagedEventSource"):
        return "kafka"
    value = t.peek("EventSourceArn")
    arn = parse_arn(value)
    if arn:
        return SOURCE_KINDS.get(arn.service)
    if isinstance(value, Symbol):
        return RESOURCE_KINDS.get(value.resource_type or "")
    return None


def sqs_source(t: Translation) -> dict[str, Any]:
    value = t.take("EventSourceArn")
    arn = parse_arn(value)
    endpoint = t.endpoint(value)
    source: dict[str, Any] = {"type": "sqs"}
    if endpoint:
        source["queue_url"], source["endpoint_url"] = queue_at(endpoint, arn)
        _region(source, arn)
    elif arn:
        source["queue_url"] = queue_url(arn)
    else:
        source["queue_url"] = t.text(
            None if isinstance(value, str) else value, t.stem_of(value, "queue") + "_QUEUE_URL",
            f"URL of the SQS queue{_shown(value)}",
            "https://sqs.us-east-1.amazonaws.com/123456789012/my-queue")
    return source


def kinesis_source(t: Translation) -> dict[str, Any]:
    value = t.take("EventSourceArn")
    arn = parse_arn(value)
    stream = stream_of_consumer(arn) if arn else None
    if stream:
        t.note("EventSourceArn", "a stream consumer (enhanced fan-out) is not supported: esm "
                                 "reads its stream with shared throughput")
        value = stream
    source = {"type": "kinesis", "stream_arn": _stream_arn(
        t, value, arn, "Kinesis stream", "arn:aws:kinesis:us-east-1:123456789012:stream/my-stream")}
    _endpoint(t, value, arn, source)
    starting_position(t, source, "LATEST")
    return source


def dynamodb_source(t: Translation) -> dict[str, Any]:
    value = t.take("EventSourceArn")
    arn = parse_arn(value)
    source = {"type": "dynamodb_streams", "stream_arn": _stream_arn(
        t, value, arn, "DynamoDB stream",
        "arn:aws:dynamodb:us-east-1:123456789012:table/my-table/stream/2024-01-01T00:00:00.000")}
    _endpoint(t, value, arn, source)
    starting_position(t, source, "LATEST")
    return source


def _stream_arn(t: Translation, value: Any, arn: Any, what: str, example: str) -> str:
    if arn:
        return str(value)
    return t.text(None if isinstance(value, str) else value,
                  t.stem_of(value, "stream") + "_STREAM_ARN",
                  f"ARN of the {what}{_shown(value)}", example)


def _endpoint(t: Translation, value: Any, arn: Any, source: dict[str, Any]) -> None:
    endpoint = t.endpoint(value)
    if endpoint:
        source["endpoint_url"] = endpoint
        _region(source, arn)


def _region(settings: dict[str, Any], arn: Any) -> None:
    """A local endpoint's URL names no region: take the ARN's."""
    region = arn.literal_region if arn else None
    if region:
        settings["region"] = region


def starting_position(t: Translation, source: dict[str, Any], default: str | None) -> None:
    """StartingPosition and its timestamp (epoch seconds). Kinesis and DynamoDB need one:
    without it `default` is written; Kafka without it keeps esm's default (TRIM_HORIZON)."""
    position = t.take("StartingPosition")
    if position is None:
        t.note("StartingPosition", f"not given (AWS requires it): {default} assumed" if default
               else "not given: esm starts a new consumer group at TRIM_HORIZON")
        position = default
    if position is not None:
        source["starting_position"] = position
    stamp = t.take("StartingPositionTimestamp")
    if stamp is not None:
        source["starting_position_timestamp"] = epoch_seconds(stamp)


def epoch_seconds(value: Any) -> Any:
    """The API's timestamp (epoch seconds, or ISO 8601 in CLI output) as epoch seconds."""
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return value
    return value


def _shown(value: Any) -> str:
    if isinstance(value, Symbol):
        return ""
    return f" {value}" if value else " (not given)"
