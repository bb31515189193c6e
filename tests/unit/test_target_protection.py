"""What targets do for target protection: read the target's Retry-After hint (HTTP
delay-seconds and dates, Lambda's TooManyRequestsException) and pass the idempotency key on
(Lambda ClientContext, Python context). The HTTP header itself is checked against a real
server in tests/integration/test_http_target_real_server.py."""

from __future__ import annotations

import base64
import io
import json
import threading
from datetime import UTC, datetime
from email.utils import format_datetime

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from connectors.aws.lambda_target import LambdaSettings, LambdaTarget
from connectors.http.target import retry_after_seconds
from connectors.python.target import PythonSettings, PythonTarget
from esm.clock import FakeClock
from esm.errors import InvokeError
from esm.interfaces import ConnectorContext
from esm.records import Event, Returned

DOC = {"Records": [{"messageId": "m-1"}]}
KEY = "ab" * 32
EVENT = Event(document=DOC, body=json.dumps(DOC).encode(), request_id="req-1",
              idempotency_key=KEY)


@pytest.mark.parametrize(("value", "expected"), [
    ("2", 2.0), (" 120 ", 120.0), ("0", 0.0), (None, None), ("", None), ("soon", None),
    ("-3", None), ("1.5", None),  # RFC 9110: delay-seconds is a non-negative integer
])
def test_retry_after_delay_seconds(value: str | None, expected: float | None) -> None:
    assert retry_after_seconds(value, FakeClock()) == expected


def test_retry_after_http_date_is_measured_from_the_clock() -> None:
    clock = FakeClock(start=1_700_000_000.0)
    later = datetime.fromtimestamp(1_700_000_000 + 90, tz=UTC)
    assert retry_after_seconds(format_datetime(later, usegmt=True), clock) == 90.0
    earlier = datetime.fromtimestamp(1_700_000_000 - 90, tz=UTC)
    assert retry_after_seconds(format_datetime(earlier, usegmt=True), clock) == 0.0


@pytest.fixture
def lambda_target() -> tuple[LambdaTarget, Stubber]:
    client = boto3.client("lambda", region_name="us-east-1", aws_access_key_id="test",
                          aws_secret_access_key="test")
    stubber = Stubber(client)
    stubber.activate()
    target = LambdaTarget(LambdaSettings(function_name="billing"),
                          ConnectorContext("orders", threading.Event(), FakeClock()),
                          client_factory=lambda: client)
    return target, stubber


def test_lambda_sends_the_key_in_client_context(lambda_target: tuple[LambdaTarget, Stubber],
                                                ) -> None:
    target, stubber = lambda_target
    custom = base64.b64encode(json.dumps({"custom": {"idempotency_key": KEY}},
                                         separators=(",", ":")).encode()).decode()
    stubber.add_response("invoke", {"StatusCode": 200, "Payload": StreamingBody(
        io.BytesIO(b"null"), 4)}, {"FunctionName": "billing", "InvocationType":
                                   "RequestResponse", "Payload": EVENT.body,
                                   "ClientContext": custom})
    assert target.invoke(EVENT, 3.0) == Returned(payload=None)
    stubber.assert_no_pending_responses()
    assert len(base64.b64decode(custom)) < 3583


def test_lambda_throttle_carries_retry_after(lambda_target: tuple[LambdaTarget, Stubber],
                                             ) -> None:
    target, stubber = lambda_target
    stubber.add_client_error("invoke", service_error_code="TooManyRequestsException",
                             service_message="Rate exceeded", http_status_code=429,
                             modeled_fields={"retryAfterSeconds": "7", "Type": "User",
                                             "message": "Rate exceeded",
                                             "Reason": "CallerRateLimitExceeded"})
    with pytest.raises(InvokeError) as raised:
        target.invoke(EVENT, 3.0)
    assert raised.value.retry_after_seconds == 7.0
    assert "TooManyRequestsException" in str(raised.value)


def test_python_handler_sees_the_key_on_its_context() -> None:
    seen: dict[str, object] = {}
    target = PythonTarget(PythonSettings(handler="tests.unit.test_target_protection:handler"),
                          ConnectorContext("orders", threading.Event(), FakeClock()))
    _SEEN.clear()
    target.invoke(EVENT, 3.0)
    target.close()
    seen.update(_SEEN)
    assert seen == {"attribute": KEY, "custom": {"idempotency_key": KEY}, "client": None}


_SEEN: dict[str, object] = {}


def handler(event: dict, context: object) -> None:
    _SEEN["attribute"] = context.idempotency_key  # type: ignore[attr-defined]
    _SEEN["custom"] = context.client_context.custom  # type: ignore[attr-defined]
    _SEEN["client"] = context.client_context.client  # type: ignore[attr-defined]
