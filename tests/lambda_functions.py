"""Lambda handlers written as users write them, run under AWS's runtime interface client in
the Runtime Interface Emulator (`tests/servers/lambda_rie_server.py`) or behind the
Lambda-style HTTP adapter. Handler strings: `tests.lambda_functions.<name>`.

The partial-batch handlers are plain Powertools (`BatchProcessor` +
`process_partial_response`): a record whose text contains "fail" raises in the record
handler and Powertools reports it in `batchItemFailures`; when every record fails,
Powertools raises (a function error). When `ESM_E2E_JOURNAL` names a file, each record
handler appends `{"id", "outcome"}` to it, so end-to-end tests see what the function saw.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes import event_source
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.data_classes.kafka_event import KafkaEventRecord
from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import (
    KinesisStreamRecord,
)
from aws_lambda_powertools.utilities.data_classes.rabbit_mq_event import RabbitMQEvent
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord


def ok(event: dict[str, Any], context: Any) -> dict[str, Any]:
    records = event.get("Records") or [r for rs in event.get("records", {}).values() for r in rs]
    return {"received": len(records), "function": context.function_name}


def raise_always(event: dict[str, Any], context: Any) -> None:
    raise ValueError("cannot process this batch")


def sleep_past_timeout(event: dict[str, Any], context: Any) -> dict[str, Any]:
    seconds = float(os.environ.get("SLEEP_SECONDS", "30"))
    if event.get("fast"):
        return {"slept": 0}
    time.sleep(seconds)
    return {"slept": seconds}


def returns_error_keys(event: dict[str, Any], context: Any) -> dict[str, Any]:
    # A legitimate result that happens to use Lambda's error key names.
    return {"statusCode": 200, "errorMessage": "no error", "errorType": "none"}


def _journal(record_id: object, outcome: str) -> None:
    path = os.environ.get("ESM_E2E_JOURNAL")
    if path:
        with open(path, "a") as journal:
            journal.write(json.dumps({"id": record_id, "outcome": outcome}) + "\n")


def _settle(record_id: object, text: str) -> None:
    if "fail" in text:
        _journal(record_id, "fail")
        raise ValueError(f"record {record_id} asked to fail")
    _journal(record_id, "ok")


def sqs_record(record: SQSRecord) -> None:
    _settle(record.message_id, record.body)


def kinesis_record(record: KinesisStreamRecord) -> None:
    _settle(record.kinesis.sequence_number, record.kinesis.data_as_text())


def dynamodb_record(record: DynamoDBRecord) -> None:
    image = record.raw_event.get("dynamodb", {}).get("NewImage", {})
    _settle(record.dynamodb.sequence_number if record.dynamodb else None, json.dumps(image))


def kafka_record(record: KafkaEventRecord) -> None:
    _settle(f"{record.topic}-{record.partition}@{record.offset}",
            record.decoded_value.decode("utf-8", "replace"))


def _partial_batch(event_type: EventType, record_handler: Any) -> Any:
    """The handler Powertools documents: one module-level processor, one call."""
    processor = BatchProcessor(event_type=event_type)

    def handler(event: dict[str, Any], context: Any) -> Any:
        return process_partial_response(event=event, record_handler=record_handler,
                                        processor=processor, context=context)
    return handler


# sqs_batch also serves esm's Redis Streams events, whose records carry messageId and body.
sqs_batch = _partial_batch(EventType.SQS, sqs_record)
kinesis_batch = _partial_batch(EventType.KinesisDataStreams, kinesis_record)
dynamodb_batch = _partial_batch(EventType.DynamoDBStreams, dynamodb_record)
kafka_batch = _partial_batch(EventType.Kafka, kafka_record)


@event_source(data_class=RabbitMQEvent)
def rabbitmq_messages(event: RabbitMQEvent, context: Any) -> dict[str, Any]:
    """esm's `aws:rmq` event read through Powertools' RabbitMQEvent data class; failed
    messages reported by `messageId`, esm's ReportBatchItemFailures extension for RabbitMQ
    (Powertools' BatchProcessor has no MQ event type: AWS has no partial response for MQ)."""
    failures = []
    for messages in event.rmq_messages_by_queue.values():
        for message in messages:
            message_id = message.basic_properties.message_id
            try:
                _settle(message_id, message.decoded_data)
            except ValueError:
                failures.append({"itemIdentifier": message_id})
    return {"batchItemFailures": failures}
