"""The `lambda` target: invoke a real AWS Lambda function (or a Lambda-compatible emulator
via `endpoint_url`) with boto3 `Invoke`, `InvocationType="RequestResponse"` (DESIGN §6).

    FunctionError in the response     → FunctionFailed from the payload (Lambda's error JSON
                                        {"errorType", "errorMessage", "stackTrace"})
    when `function_error_detection` reads payloads (`lambda_errors`: by default with
    an `endpoint_url`, never against AWS itself):
      no header, but a runtime's error document or RIE's timeout text as the payload
                                      → FunctionFailed
      HTTP 502 carrying an error document (RIE's answer to a handler that cannot be
      imported or a runtime that exits; a function error on AWS)
                                      → FunctionFailed
    otherwise                         → Returned (payload parsed as JSON; empty → None)
    any other ClientError (throttling, 5xx service errors, ResourceNotFound, AccessDenied,
    ...), connection errors, read timeouts
                                      → raise InvokeError

Every invocation error is an InvokeError because AWS retries those until the records
expire, without using up `maximum_retry_attempts` (ESM-SPEC §4.1); the message says
which kind it was, so a missing function or permission shows up plainly in the logs.

botocore's own retries are off (`max_attempts: 0`): retries and backoff belong to the
failure policy; a throttle's `retryAfterSeconds` rides on the InvokeError, so the lane
waits at least that long. The event's idempotency key goes in `ClientContext.custom`.
The read timeout is `timeout_seconds + 5` so that a function running to its own timeout
answers with a function error before the socket gives up (at RIE, keep
`timeout_seconds` at least the function's AWS_LAMBDA_FUNCTION_TIMEOUT).
The client is built on first use, once, under a lock; boto3 clients are thread-safe.
`max_concurrent_invocations` caps the calls in flight from this target: RIE serves one
invocation at a time and crashes when a second arrives meanwhile (measured), so a mapping
pointed at a function's own container sets it to 1.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3  # type: ignore[import-untyped]
import orjson
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import (  # type: ignore[import-untyped]
    BotoCoreError,
    ClientError,
    ReadTimeoutError,
)

from connectors.aws.lambda_errors import (
    DETECTIONS,
    Detection,
    failure_in_payload,
    function_failed,
    reads_payload,
)
from esm.errors import InvokeError
from esm.interfaces import ConnectorContext
from esm.records import Event, InvokeResult, Returned

DEFAULT_REGION = "us-east-1"
READ_TIMEOUT_MARGIN_SECONDS = 5.0
# Where the body of a 5xx answer is kept for the error check (botocore drops it).
_ERROR_BODY_KEY = "EsmErrorBody"
_ERROR_BODY_LIMIT = 64 * 1024
# How often a call waiting for a free invocation slot looks at the stop event.
_SLOT_POLL_SECONDS = 0.5
# Error codes whose cause is configuration, not load: said so in the message.
_CONFIG_CODES = frozenset({"ResourceNotFoundException", "AccessDeniedException",
                           "AccessDenied", "UnrecognizedClientException",
                           "InvalidSignatureException"})


@dataclass(frozen=True, slots=True)
class LambdaSettings:
    function_name: str = field(metadata={
        "doc": "function name, partial or full ARN (name:alias allowed)"})
    qualifier: str | None = field(default=None, metadata={"doc": "version or alias"})
    region: str | None = field(default=None, metadata={
        "doc": "AWS region; default: from a function ARN, then boto3's chain, then us-east-1"})
    endpoint_url: str | None = field(default=None, metadata={
        "doc": "Lambda-compatible endpoint (emulators, VPC endpoints)"})
    timeout_seconds: float = field(default=900.0, metadata={
        "min": 1, "max": 900, "doc": "the function's timeout; the socket waits 5 s more"})
    connect_timeout_seconds: float = field(default=5.0, metadata={
        "min": 0.1, "max": 60, "doc": "seconds to wait for the TCP/TLS connection"})
    max_connections: int = field(default=10, metadata={
        "min": 1, "max": 1000, "doc": "HTTP connections kept to the Lambda endpoint"})
    function_error_detection: Detection = field(default="auto", metadata={
        "choices": list(DETECTIONS),
        "doc": "how a function error is recognised: header (X-Amz-Function-Error only, "
               "AWS's contract), payload (also a runtime error document or RIE's timeout "
               "text without the header, as the Runtime Interface Emulator answers), auto "
               "(header without endpoint_url, payload with one)"})
    max_concurrent_invocations: int | None = field(default=None, metadata={
        "min": 1, "max": 1000,
        "doc": "invocations in flight at once from this target; 1 for a function's own "
               "container (its emulator serves one at a time); default: no cap"})


class LambdaTarget:
    """Invokes one Lambda function synchronously; thread-safe."""

    Settings = LambdaSettings

    def __init__(self, settings: LambdaSettings, context: ConnectorContext, *,
                 client_factory: Callable[[], Any] | None = None) -> None:
        self._settings = settings
        self._where = f"lambda Invoke {settings.function_name!r} (mapping {context.mapping!r})"
        self._client_factory = client_factory or (lambda: build_client(settings))
        self._client: Any = None
        self._lock = threading.Lock()
        self._stop = context.stop
        self._reads_payload = reads_payload(settings.function_error_detection,
                                            settings.endpoint_url)
        cap = settings.max_concurrent_invocations
        self._slots = threading.BoundedSemaphore(cap) if cap else None

    @property
    def function_arn(self) -> str | None:
        """The function's ARN for on-failure notices when configured as one, else None
        (the account id is unknown without an API call)."""
        name = self._settings.function_name
        return name if name.startswith("arn:") else None

    def invoke(self, event: Event, timeout_seconds: float) -> InvokeResult:
        """One RequestResponse invocation. `timeout_seconds` is informational here: the
        function's own timeout (settings.timeout_seconds) is what Lambda enforces."""
        if self._slots is None:
            return self._invoke(event)
        self._take_slot()
        try:
            return self._invoke(event)
        finally:
            self._slots.release()

    def _invoke(self, event: Event) -> InvokeResult:
        params: dict[str, Any] = {"FunctionName": self._settings.function_name,
                                  "InvocationType": "RequestResponse", "Payload": event.body}
        if self._settings.qualifier:
            params["Qualifier"] = self._settings.qualifier
        if event.idempotency_key:
            params["ClientContext"] = client_context(event.idempotency_key)
        try:
            response = self._get_client().invoke(**params)
            payload: bytes = response["Payload"].read()
        except ClientError as exc:
            return self._client_error(exc)
        except ReadTimeoutError as exc:
            raise InvokeError(f"{self._where}: no response within "
                              f"{self._settings.timeout_seconds + READ_TIMEOUT_MARGIN_SECONDS:.0f}s"
                              ) from exc
        except BotoCoreError as exc:
            raise InvokeError(f"{self._where}: {type(exc).__name__}: {exc}") from exc
        function_error = response.get("FunctionError")
        if function_error:
            return function_failed(str(function_error), payload)
        if self._reads_payload:
            failed = failure_in_payload(payload)
            if failed is not None:
                return failed
        return _returned(payload)

    def _take_slot(self) -> None:
        assert self._slots is not None
        while not self._slots.acquire(timeout=_SLOT_POLL_SECONDS):
            if self._stop.is_set():
                raise InvokeError(f"{self._where}: stopping while waiting for one of "
                                  f"{self._settings.max_concurrent_invocations} invocation "
                                  "slots")

    def _client_error(self, exc: ClientError) -> InvokeResult:
        """A function error when an emulator put one in a 502 (module docstring), else
        raise InvokeError."""
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        body = exc.response.get(_ERROR_BODY_KEY)
        if self._reads_payload and status == 502 and isinstance(body, bytes):
            failed = failure_in_payload(body)
            if failed is not None:
                return failed
        raise InvokeError(self._client_error_message(exc), retry_after(exc)) from exc

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None and hasattr(client, "close"):
            client.close()

    def _get_client(self) -> Any:
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._client_factory()
                client = self._client
        return client

    def _client_error_message(self, exc: ClientError) -> str:
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or "ClientError")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
        message = f"{self._where}: {code} (HTTP {status}): {error.get('Message', '')}"
        if code in _CONFIG_CODES:
            message += " (check function_name, region and permissions; retried until the " \
                       "records expire)"
        return message


def client_context(idempotency_key: str) -> str:
    """Lambda's ClientContext: base64 of `{"custom": {...}}`, which the function sees as
    `context.client_context.custom` (at most 3583 bytes; ours is under 150)."""
    document = orjson.dumps({"custom": {"idempotency_key": idempotency_key}})
    return base64.b64encode(document).decode("ascii")


def retry_after(exc: ClientError) -> float | None:
    """Seconds Lambda asked to wait: TooManyRequestsException's `retryAfterSeconds`
    (botocore's model reads it from the `Retry-After` header), else the header itself."""
    response = exc.response
    value = response.get("retryAfterSeconds")
    if value is None:
        value = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("retry-after")
    try:
        seconds = float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
    return seconds if seconds is not None and seconds >= 0 else None


def build_client(settings: LambdaSettings) -> Any:
    """A boto3 Lambda client with esm's timeouts and botocore retries off."""
    session = boto3.session.Session()
    region = settings.region or _region_from_arn(settings.function_name) \
        or session.region_name or DEFAULT_REGION
    config = Config(
        connect_timeout=settings.connect_timeout_seconds,
        read_timeout=settings.timeout_seconds + READ_TIMEOUT_MARGIN_SECONDS,
        retries={"max_attempts": 0, "mode": "standard"},
        max_pool_connections=settings.max_connections,
    )
    client = session.client("lambda", region_name=region,
                            endpoint_url=settings.endpoint_url, config=config)
    client.meta.events.register("before-parse.lambda.Invoke", _keep_error_body)
    return client


def _keep_error_body(response_dict: dict[str, Any], customized_response_dict: dict[str, Any],
                     **_: Any) -> None:
    # botocore parses a 5xx body for an AWS error code and drops the rest; RIE puts the
    # function's error document there. What lands in customized_response_dict reaches
    # ClientError.response.
    body = response_dict.get("body")
    if response_dict.get("status_code", 0) >= 500 and isinstance(body, bytes):
        customized_response_dict[_ERROR_BODY_KEY] = body[:_ERROR_BODY_LIMIT]


def _region_from_arn(function_name: str) -> str | None:
    # arn:aws:lambda:<region>:<account>:function:<name>
    parts = function_name.split(":")
    if len(parts) >= 7 and parts[0] == "arn" and parts[2] == "lambda":
        return parts[3] or None
    return None


def _returned(payload: bytes) -> Returned:
    # Same rules as the http target (kept apart: connectors never import each other).
    if not payload.strip():
        return Returned(payload=None)
    try:
        return Returned(payload=orjson.loads(payload))
    except orjson.JSONDecodeError:
        return Returned(payload=None, raw=payload, valid_json=False)
