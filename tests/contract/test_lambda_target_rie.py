"""The `lambda` target against AWS's Runtime Interface Emulator running unmodified Python
handlers under awslambdaric: what RIE answers, read the way AWS's answers are read."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from connectors.aws.lambda_target import LambdaSettings, LambdaTarget
from esm.clock import SystemClock
from esm.interfaces import ConnectorContext
from esm.records import Event, FunctionFailed, Returned
from tests.servers.common import ServerUnavailable
from tests.servers.lambda_rie_server import (  # noqa: F401
    LambdaRie,
    StartRie,
    ensure_installed,
    lambda_rie,
)

pytestmark = pytest.mark.integration
FUNCTIONS = "tests.lambda_functions"


@pytest.fixture(autouse=True)
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    # boto3 signs every request; RIE ignores the signature.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")


@pytest.fixture
def targets() -> Iterator[list[LambdaTarget]]:
    made: list[LambdaTarget] = []
    yield made
    for target in made:
        target.close()


def target_for(rie: LambdaRie, made: list[LambdaTarget], **settings: Any) -> LambdaTarget:
    target = LambdaTarget(
        LambdaSettings(function_name="function", endpoint_url=rie.endpoint_url,
                       region="us-east-1", timeout_seconds=10, **settings),
        ConnectorContext("rie-contract", threading.Event(), SystemClock()))
    made.append(target)
    return target


def event(document: dict[str, Any]) -> Event:
    return Event(document=document, body=json.dumps(document).encode(), request_id="req-1")


SQS_EVENT = {"Records": [
    {"messageId": f"m-{i}", "receiptHandle": f"rh-{i}", "body": body, "attributes": {},
     "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
     "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:orders", "awsRegion": "us-east-1"}
    for i, body in enumerate(["a", "please fail", "c"])]}


def test_success_returns_the_handlers_result(lambda_rie: StartRie,  # noqa: F811
                                             targets: list[LambdaTarget]) -> None:
    # Given an unmodified handler in RIE
    target = target_for(lambda_rie(f"{FUNCTIONS}.ok"), targets)
    # When invoked with an SQS event
    result = target.invoke(event(SQS_EVENT), 10)
    # Then its result comes back parsed
    assert result == Returned(payload={"received": 3, "function": "test_function"})


def test_exception_is_a_function_error_with_type_and_message(
        lambda_rie: StartRie, targets: list[LambdaTarget]) -> None:  # noqa: F811
    # Given a handler that raises (RIE: HTTP 200, error document, no X-Amz-Function-Error)
    target = target_for(lambda_rie(f"{FUNCTIONS}.raise_always"), targets)
    # When invoked
    result = target.invoke(event(SQS_EVENT), 10)
    # Then it is a function error carrying the exception, never a success
    assert isinstance(result, FunctionFailed), result
    assert (result.error_type, result.error_message) == \
        ("ValueError", "cannot process this batch")
    assert any("raise_always" in line for line in result.stack_trace)


def test_header_only_detection_misses_rie_errors(lambda_rie: StartRie,  # noqa: F811
                                                 targets: list[LambdaTarget]) -> None:
    # Given the same failing handler read with AWS's contract alone (the original bug)
    target = target_for(lambda_rie(f"{FUNCTIONS}.raise_always"), targets,
                        function_error_detection="header")
    # When invoked / Then the error document looks like a result: why auto reads payloads
    result = target.invoke(event(SQS_EVENT), 10)
    assert isinstance(result, Returned)
    assert result.payload["errorType"] == "ValueError"


def test_timeout_is_a_function_error_and_the_next_invoke_runs(
        lambda_rie: StartRie, targets: list[LambdaTarget]) -> None:  # noqa: F811
    # Given a function timeout of 1 s and a handler that sleeps 30 s
    target = target_for(lambda_rie(f"{FUNCTIONS}.sleep_past_timeout", timeout_seconds=1),
                        targets)
    # When invoked
    started = time.monotonic()
    result = target.invoke(event({"Records": []}), 10)
    # Then RIE's timeout answer is a timeout function error, after about the timeout
    assert result == FunctionFailed("Sandbox.Timedout", "Task timed out after 1.00 seconds")
    assert time.monotonic() - started < 8
    # And the emulator restarts the runtime for the next invocation
    assert target.invoke(event({"fast": True}), 10) == Returned(payload={"slept": 0})


def test_result_with_error_keys_among_others_is_not_misread(
        lambda_rie: StartRie, targets: list[LambdaTarget]) -> None:  # noqa: F811
    target = target_for(lambda_rie(f"{FUNCTIONS}.returns_error_keys"), targets)
    result = target.invoke(event(SQS_EVENT), 10)
    assert result == Returned(payload={"statusCode": 200, "errorMessage": "no error",
                                       "errorType": "none"})


def test_handler_that_cannot_be_imported_is_a_function_error(
        lambda_rie: StartRie, targets: list[LambdaTarget]) -> None:  # noqa: F811
    # Given a handler name that does not exist (RIE: HTTP 502 with an error document)
    target = target_for(lambda_rie(f"{FUNCTIONS}.no_such_handler"), targets)
    # When invoked / Then it is a function error as on AWS, not an invoke error forever
    result = target.invoke(event(SQS_EVENT), 10)
    assert isinstance(result, FunctionFailed), result
    assert result.error_type == "Runtime.HandlerNotFound"


def _kinesis_event() -> dict[str, Any]:
    return {"Records": [
        {"kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": "k",
                     "sequenceNumber": f"4959{i}", "approximateArrivalTimestamp": 1.7e9,
                     "data": base64.b64encode(text.encode()).decode()},
         "eventSource": "aws:kinesis", "eventVersion": "1.0", "eventID": f"shardId-0:4959{i}",
         "eventName": "aws:kinesis:record", "awsRegion": "us-east-1",
         "eventSourceARN": "arn:aws:kinesis:us-east-1:000000000000:stream/s"}
        for i, text in enumerate(["a", "b", "fail please"])]}


def _dynamodb_event() -> dict[str, Any]:
    return {"Records": [
        {"eventID": f"e{i}", "eventName": "INSERT", "eventVersion": "1.1",
         "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
         "dynamodb": {"Keys": {"pk": {"S": f"k{i}"}}, "NewImage": {"v": {"S": text}},
                      "SequenceNumber": f"10{i}", "SizeBytes": 20,
                      "StreamViewType": "NEW_AND_OLD_IMAGES"},
         "eventSourceARN": "arn:aws:dynamodb:us-east-1:000000000000:table/t/stream/x"}
        for i, text in enumerate(["fail", "b", "c"])]}


def _kafka_event() -> dict[str, Any]:
    def record(offset: int, text: str) -> dict[str, Any]:
        return {"topic": "orders", "partition": 0, "offset": offset, "timestamp": 1,
                "timestampType": "CREATE_TIME", "key": None, "headers": [],
                "value": base64.b64encode(text.encode()).decode()}
    return {"eventSource": "SelfManagedKafka", "bootstrapServers": "127.0.0.1:9092",
            "records": {"orders-0": [record(15, "a"), record(16, "fail"), record(17, "c")]}}


@pytest.mark.parametrize(("handler", "document", "failed"), [
    ("sqs_batch", SQS_EVENT, [{"itemIdentifier": "m-1"}]),
    ("kinesis_batch", _kinesis_event(), [{"itemIdentifier": "49592"}]),
    ("dynamodb_batch", _dynamodb_event(), [{"itemIdentifier": "100"}]),
    ("kafka_batch", _kafka_event(),
     [{"itemIdentifier": {"partition": "orders-0", "offset": 16}}]),
])
def test_powertools_partial_batch_response_names_the_failed_records(
        lambda_rie: StartRie, targets: list[LambdaTarget], handler: str,  # noqa: F811
        document: dict[str, Any], failed: list[dict[str, Any]]) -> None:
    # Given an unmodified Powertools BatchProcessor handler and a batch with one bad record
    target = target_for(lambda_rie(f"{FUNCTIONS}.{handler}"), targets)
    # When invoked
    result = target.invoke(event(document), 10)
    # Then the result is Powertools' partial batch response naming that record
    assert result == Returned(payload={"batchItemFailures": failed})


def test_powertools_batch_where_every_record_fails_is_a_function_error(
        lambda_rie: StartRie, targets: list[LambdaTarget]) -> None:  # noqa: F811
    target = target_for(lambda_rie(f"{FUNCTIONS}.sqs_batch"), targets)
    all_bad = {"Records": [dict(r, body="fail") for r in SQS_EVENT["Records"]]}
    result = target.invoke(event(all_bad), 10)
    assert isinstance(result, FunctionFailed), result
    assert result.error_type == "BatchProcessingError"


def test_harness_without_go_fails_naming_the_missing_toolchain(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given an empty cache (nothing built yet) and no `go` on PATH
    monkeypatch.setenv("ESM_TEST_CACHE", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    # When the emulator is asked for / Then it fails (never skips) saying what to install
    with pytest.raises(ServerUnavailable, match=r"Go toolchain \(`go`\) is not on PATH"):
        ensure_installed()
