"""connectors.aws.lambda_target with botocore's Stubber (no network), plus the real client
builder's configuration and a real connection-refused error."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from connectors.aws.lambda_target import LambdaSettings, LambdaTarget, build_client
from esm.clock import FakeClock
from esm.errors import InvokeError
from esm.interfaces import ConnectorContext
from esm.records import Event, FunctionFailed, Returned
from tests.servers.common import free_port

DOC = {"Records": [{"messageId": "m-1"}]}
EVENT = Event(document=DOC, body=json.dumps(DOC).encode(), request_id="req-1")


def context() -> ConnectorContext:
    return ConnectorContext("orders", threading.Event(), FakeClock())


@pytest.fixture
def stubbed() -> Iterator[tuple[LambdaTarget, Stubber]]:
    client = boto3.client("lambda", region_name="us-east-1", aws_access_key_id="test",
                          aws_secret_access_key="test")
    stubber = Stubber(client)
    stubber.activate()
    target = LambdaTarget(LambdaSettings(function_name="billing", qualifier="live"), context(),
                          client_factory=lambda: client)
    yield target, stubber
    target.close()
    stubber.assert_no_pending_responses()


def invoke_response(payload: bytes, function_error: str | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"StatusCode": 200, "ExecutedVersion": "1",
                                "Payload": StreamingBody(io.BytesIO(payload), len(payload))}
    if function_error:
        response["FunctionError"] = function_error
    return response


EXPECTED = {"FunctionName": "billing", "InvocationType": "RequestResponse",
            "Payload": EVENT.body, "Qualifier": "live"}


def test_success_returns_the_parsed_payload(stubbed: tuple[LambdaTarget, Stubber]) -> None:
    # Given Lambda answering a partial batch response to the exact Invoke request
    target, stubber = stubbed
    body = b'{"batchItemFailures": [{"itemIdentifier": "m-1"}]}'
    stubber.add_response("invoke", invoke_response(body), EXPECTED)
    # When invoked
    result = target.invoke(EVENT, 900)
    # Then the payload comes back parsed
    assert result == Returned(payload={"batchItemFailures": [{"itemIdentifier": "m-1"}]})


@pytest.mark.parametrize(("payload", "expected"), [
    (b"", Returned(payload=None)),
    (b"null", Returned(payload=None)),
    (b'""', Returned(payload="")),
    (b"not json", Returned(payload=None, raw=b"not json", valid_json=False)),
])
def test_payload_shapes(stubbed: tuple[LambdaTarget, Stubber], payload: bytes,
                        expected: Returned) -> None:
    target, stubber = stubbed
    stubber.add_response("invoke", invoke_response(payload), EXPECTED)
    assert target.invoke(EVENT, 900) == expected


def test_function_error_becomes_function_failed(stubbed: tuple[LambdaTarget, Stubber]) -> None:
    # Given Lambda reporting an Unhandled error with the runtime's error document
    target, stubber = stubbed
    doc = {"errorType": "KeyError", "errorMessage": "'amount'",
           "stackTrace": ['  File "/var/task/app.py", line 3, in handler\n']}
    stubber.add_response("invoke", invoke_response(json.dumps(doc).encode(), "Unhandled"),
                         EXPECTED)
    # When invoked
    result = target.invoke(EVENT, 900)
    # Then it is a function error carrying type, message and stack
    assert result == FunctionFailed("KeyError", "'amount'", tuple(doc["stackTrace"]))


def test_timeout_error_document_without_type_uses_function_error(
        stubbed: tuple[LambdaTarget, Stubber]) -> None:
    # Given Lambda's timeout answer (no errorType in older runtimes)
    target, stubber = stubbed
    body = b'{"errorMessage": "2024-01-01T00:00:00.000Z req-1 Task timed out after 3.00 seconds"}'
    stubber.add_response("invoke", invoke_response(body, "Unhandled"), EXPECTED)
    # When invoked / Then the FunctionError value is the type
    result = target.invoke(EVENT, 900)
    assert isinstance(result, FunctionFailed)
    assert result.error_type == "Unhandled"
    assert "Task timed out" in result.error_message


@pytest.mark.parametrize(("code", "status"), [
    ("TooManyRequestsException", 429),
    ("ServiceException", 500),
    ("EC2ThrottledException", 502),
    ("ResourceNotFoundException", 404),
    ("AccessDeniedException", 403),
])
def test_invocation_errors_raise_invoke_error(stubbed: tuple[LambdaTarget, Stubber], code: str,
                                              status: int) -> None:
    # Given Lambda refusing the invocation (ESM-SPEC §4.1)
    target, stubber = stubbed
    stubber.add_client_error("invoke", service_error_code=code, service_message="nope",
                             http_status_code=status, expected_params=EXPECTED)
    # When invoked / Then InvokeError names the function, code and status
    with pytest.raises(InvokeError) as err:
        target.invoke(EVENT, 900)
    assert "'billing'" in str(err.value)
    assert f"{code} (HTTP {status}): nope" in str(err.value)


def test_missing_function_message_says_what_to_check(
        stubbed: tuple[LambdaTarget, Stubber]) -> None:
    target, stubber = stubbed
    stubber.add_client_error("invoke", service_error_code="ResourceNotFoundException",
                             http_status_code=404, expected_params=EXPECTED)
    with pytest.raises(InvokeError, match="check function_name, region and permissions"):
        target.invoke(EVENT, 900)


def test_client_is_built_once_across_threads() -> None:
    # Given a factory that counts its calls
    built: list[object] = []
    gate = threading.Barrier(8)

    def factory() -> object:
        built.append(object())
        return _RaisingClient()

    target = LambdaTarget(LambdaSettings(function_name="f"), context(), client_factory=factory)

    def call() -> None:
        gate.wait()
        with pytest.raises(InvokeError):
            target.invoke(EVENT, 1)

    threads = [threading.Thread(target=call) for _ in range(8)]
    # When eight lane workers invoke at once
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Then the client was built exactly once
    assert len(built) == 1


class _RaisingClient:
    def invoke(self, **params: Any) -> Any:
        from botocore.exceptions import EndpointConnectionError

        raise EndpointConnectionError(endpoint_url="http://127.0.0.1:1")


def test_build_client_turns_off_botocore_retries_and_pads_the_read_timeout() -> None:
    # Given settings for an emulator with a 60 s function timeout
    settings = LambdaSettings(function_name="f", region="eu-west-1", timeout_seconds=60,
                              endpoint_url="http://127.0.0.1:9999")
    # When the client is built (no network)
    client = build_client(settings)
    # Then retries are ours, the socket outlives the function, and the endpoint is used
    assert client.meta.config.retries["total_max_attempts"] == 1
    assert client.meta.config.read_timeout == 65
    assert client.meta.region_name == "eu-west-1"
    assert client.meta.endpoint_url == "http://127.0.0.1:9999"


def test_region_comes_from_a_function_arn() -> None:
    settings = LambdaSettings(function_name="arn:aws:lambda:ap-south-1:123456789012:function:f")
    assert build_client(settings).meta.region_name == "ap-south-1"


def test_connection_refused_raises_invoke_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a real client pointed at a port where nothing listens
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    url = f"http://127.0.0.1:{free_port()}"
    target = LambdaTarget(LambdaSettings(function_name="f", region="us-east-1",
                                         endpoint_url=url, connect_timeout_seconds=1), context())
    # When invoked / Then InvokeError says it could not connect (no botocore retries)
    with pytest.raises(InvokeError, match="EndpointConnectionError"):
        target.invoke(EVENT, 1)
    target.close()


def test_function_arn_is_exposed_only_when_configured_as_an_arn() -> None:
    arn = "arn:aws:lambda:eu-west-1:123456789012:function:billing"
    assert LambdaTarget(LambdaSettings(function_name=arn), context()).function_arn == arn
    assert LambdaTarget(LambdaSettings(function_name="billing"), context()).function_arn is None
