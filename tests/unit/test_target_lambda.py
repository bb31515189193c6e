"""connectors.aws.lambda_target with botocore's Stubber (no network), plus the real client
builder's configuration and a real connection-refused error."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from connectors.aws.lambda_errors import (
    failure_in_payload,
    is_error_document,
    reads_payload,
)
from connectors.aws.lambda_target import (
    LambdaSettings,
    LambdaTarget,
    _keep_error_body,
    build_client,
)
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


# ---- function errors reported in the payload alone (emulators) ---------------------------

RIE_ERROR = {"errorMessage": "bad batch", "errorType": "ValueError", "requestId": "r-1",
             "stackTrace": ['  File "/var/task/app.py", line 5, in handler\n']}


@pytest.mark.parametrize(("document", "expected"), [
    (RIE_ERROR, True),
    ({"errorMessage": "", "errorType": "KeyError", "stackTrace": []}, True),
    ({"errorMessage": "m", "errorType": "Error", "cause": {"errorMessage": "c"}}, True),
    ({"errorMessage": "m", "errorType": "Runtime.ExitError"}, True),
    ({"errorMessage": "none", "errorType": "x", "status": "fine"}, False),
    ({"errorMessage": "m", "errorType": "x", "batchItemFailures": []}, False),
    ({"errorMessage": "m"}, False),
    ({"errorType": "x"}, False),
    ({"errorMessage": "m", "errorType": ""}, False),
    ({"errorMessage": 3, "errorType": "x"}, False),
    (["errorMessage", "errorType"], False),
    (None, False),
])
def test_error_document_is_recognised_only_in_a_runtimes_shape(document: Any,
                                                               expected: bool) -> None:
    assert is_error_document(document) is expected


@pytest.mark.parametrize(("detection", "endpoint_url", "expected"), [
    ("auto", None, False),
    ("auto", "http://127.0.0.1:8080", True),
    ("header", "http://127.0.0.1:8080", False),
    ("payload", None, True),
])
def test_auto_reads_payloads_only_with_an_endpoint_url(detection: Any, endpoint_url: str | None,
                                                       expected: bool) -> None:
    assert reads_payload(detection, endpoint_url) is expected


def test_rie_timeout_text_is_a_timeout_function_error() -> None:
    assert failure_in_payload(b"Task timed out after 3.00 seconds") == \
        FunctionFailed("Sandbox.Timedout", "Task timed out after 3.00 seconds")
    assert failure_in_payload(b'"Task timed out after 3.00 seconds"') is None
    assert failure_in_payload(b"Task timed out after 3 seconds, then recovered") is None


def stubbed_target(**settings: Any) -> tuple[LambdaTarget, Stubber]:
    client = boto3.client("lambda", region_name="us-east-1", aws_access_key_id="test",
                          aws_secret_access_key="test")
    stubber = Stubber(client)
    stubber.activate()
    target = LambdaTarget(LambdaSettings(function_name="billing", **settings), context(),
                          client_factory=lambda: client)
    return target, stubber


EMULATOR = "http://127.0.0.1:8080"
PLAIN = {"FunctionName": "billing", "InvocationType": "RequestResponse", "Payload": EVENT.body}


def test_emulator_error_document_without_header_is_a_function_error() -> None:
    # Given an emulator (endpoint_url set, detection auto) answering RIE's error document
    target, stubber = stubbed_target(endpoint_url=EMULATOR)
    stubber.add_response("invoke", invoke_response(json.dumps(RIE_ERROR).encode()), PLAIN)
    # When invoked
    result = target.invoke(EVENT, 900)
    # Then it is the handler's exception, not a success
    assert result == FunctionFailed("ValueError", "bad batch", tuple(RIE_ERROR["stackTrace"]))


def test_emulator_timeout_text_is_a_function_error() -> None:
    target, stubber = stubbed_target(endpoint_url=EMULATOR)
    stubber.add_response("invoke", invoke_response(b"Task timed out after 2.00 seconds"), PLAIN)
    result = target.invoke(EVENT, 900)
    assert result == FunctionFailed("Sandbox.Timedout", "Task timed out after 2.00 seconds")


def test_emulator_result_with_error_keys_among_others_is_a_result() -> None:
    # Given a handler that returns errorMessage/errorType next to its own keys
    target, stubber = stubbed_target(endpoint_url=EMULATOR)
    body = {"errorMessage": "none", "errorType": "x", "status": "fine"}
    stubber.add_response("invoke", invoke_response(json.dumps(body).encode()), PLAIN)
    # When invoked / Then it is returned as the handler's result
    assert target.invoke(EVENT, 900) == Returned(payload=body)


def test_aws_without_header_trusts_the_header_even_for_an_error_shaped_result() -> None:
    # Given real AWS (no endpoint_url): the header is always sent for a function error
    target, stubber = stubbed_target()
    stubber.add_response("invoke", invoke_response(json.dumps(RIE_ERROR).encode()), PLAIN)
    # When the handler returned exactly an error-shaped document / Then it is a result
    assert target.invoke(EVENT, 900) == Returned(payload=RIE_ERROR)


def test_header_detection_ignores_payloads_at_an_emulator() -> None:
    target, stubber = stubbed_target(endpoint_url=EMULATOR, function_error_detection="header")
    stubber.add_response("invoke", invoke_response(b"Task timed out after 2.00 seconds"), PLAIN)
    assert target.invoke(EVENT, 900) == Returned(
        payload=None, raw=b"Task timed out after 2.00 seconds", valid_json=False)


def test_payload_detection_reads_payloads_from_aws_too() -> None:
    target, stubber = stubbed_target(function_error_detection="payload")
    stubber.add_response("invoke", invoke_response(json.dumps(RIE_ERROR).encode()), PLAIN)
    assert isinstance(target.invoke(EVENT, 900), FunctionFailed)


def test_error_body_of_a_5xx_is_kept_for_the_error_check() -> None:
    # Given botocore's response dict for RIE's 502 (handler cannot be imported)
    body = b'{"errorMessage": "Unable to import module", "errorType": "Runtime.ImportModuleError"}'
    kept: dict[str, Any] = {}
    # When the before-parse hook sees it (and a 200, which must be left alone)
    _keep_error_body({"status_code": 502, "body": body}, kept)
    ignored: dict[str, Any] = {}
    _keep_error_body({"status_code": 200, "body": body}, ignored)
    # Then the 5xx body reaches ClientError.response
    assert list(kept.values()) == [body]
    assert ignored == {}


def test_built_client_runs_the_error_body_hook_before_parsing() -> None:
    client = build_client(LambdaSettings(function_name="f", endpoint_url=EMULATOR))
    kept: dict[str, Any] = {}
    client.meta.events.emit("before-parse.lambda.Invoke", operation_model=None,
                            response_dict={"status_code": 502, "body": b"{}"},
                            customized_response_dict=kept)
    assert list(kept.values()) == [b"{}"]


# ---- max_concurrent_invocations ---------------------------------------------------------


class _CountingClient:
    """Holds each call until released and records the most calls seen at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.most = 0
        self.release = threading.Event()

    def invoke(self, **params: Any) -> Any:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        self.release.wait(5)
        with self.lock:
            self.now -= 1
        return invoke_response(b"{}")


def test_max_concurrent_invocations_caps_calls_in_flight() -> None:
    # Given a target capped at one invocation and four lane workers calling at once
    client = _CountingClient()
    target = LambdaTarget(LambdaSettings(function_name="f", max_concurrent_invocations=1),
                          context(), client_factory=lambda: client)
    threads = [threading.Thread(target=target.invoke, args=(EVENT, 1)) for _ in range(4)]
    for t in threads:
        t.start()
    # When the calls are let through
    threading.Timer(0.3, client.release.set).start()
    for t in threads:
        t.join(10)
    # Then never more than one was in flight
    assert client.most == 1


def test_waiting_for_a_slot_gives_up_when_stopping() -> None:
    # Given the only slot taken and the daemon stopping
    client = _CountingClient()
    ctx = context()
    target = LambdaTarget(LambdaSettings(function_name="f", max_concurrent_invocations=1),
                          ctx, client_factory=lambda: client)
    first = threading.Thread(target=target.invoke, args=(EVENT, 1))
    first.start()
    deadline = time.monotonic() + 5
    while client.now == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    ctx.stop.set()
    # When another call waits / Then it raises InvokeError instead of waiting forever
    with pytest.raises(InvokeError, match="stopping while waiting"):
        target.invoke(EVENT, 1)
    client.release.set()
    first.join(10)
