"""How a Lambda-compatible endpoint says "the function failed", read the same way for all.

AWS Lambda and LocalStack answer a failed invocation with HTTP 200, the header
`X-Amz-Function-Error: Unhandled` and the runtime's error document as the payload.
`sam local start-lambda` runs RIE and sets the header from its own reading of the payload
(samcli/local/services/base_local_service.py), which accepts only objects of the keys
errorMessage, errorType, stackTrace, cause (or any three keys): it misses the four-key
document awslambdaric sends (with `requestId`), which `payload` reads.

The Runtime Interface Emulator (RIE, the emulator inside every Lambda base image) does not
set the header. Measured against RIE with `awslambdaric`:

    handler raises                  200, {"errorMessage", "errorType", "requestId",
                                         "stackTrace"} — errorMessage may be ""
    function timeout exceeded       200, text/plain `Task timed out after 3.00 seconds`
    handler not found, import error 502, {"errorMessage", "errorType": "Runtime.…",
                                         "requestId": "", "stackTrace": []}
    runtime process exits           502, {"errorType": "Runtime.ExitError", "errorMessage"}

On AWS every one of these is a function error (FunctionError: Unhandled), so esm reads them
as function errors too: retried up to `maximum_retry_attempts`, then the on-failure
destination — never an ack, and never an invoke error retried without end.

`function_error_detection`:
    header   only the header (AWS's contract). A payload is never second-guessed.
    payload  the header, or else an error document / RIE's timeout text in the payload.
    auto     (default) `header` when no `endpoint_url` is set: real AWS always sends the
             header, so a handler that legitimately returns `errorMessage` keys is never
             misread there. With an `endpoint_url` (an emulator), `payload`.

An error document is a JSON object with a non-empty string `errorType`, a string
`errorMessage`, and no key outside {errorMessage, errorType, stackTrace, requestId, cause}:
the shapes Lambda runtimes produce (`cause` is Node's nested error, `requestId` is added by
awslambdaric). A handler result with any other key (`statusCode`, `batchItemFailures`, …)
is a result. Only a handler that returns exactly such an object on purpose is misread, and
only at an `endpoint_url`; `header` is there for endpoints that send the header anyway
(LocalStack).
"""

from __future__ import annotations

import re
from typing import Any, Literal

import orjson

from esm.records import FunctionFailed

Detection = Literal["header", "payload", "auto"]
DETECTIONS: tuple[Detection, ...] = ("header", "payload", "auto")

ERROR_DOCUMENT_KEYS = frozenset({"errorMessage", "errorType", "stackTrace", "requestId",
                                 "cause"})
# RIE's timeout answer (internal/lambda/rie/handlers.go): not JSON, no header.
_RIE_TIMEOUT = re.compile(rb"\s*Task timed out after \d+(?:\.\d+)? seconds\s*")
TIMEOUT_ERROR_TYPE = "Sandbox.Timedout"  # what AWS reports for a function timeout
_EXCERPT_BYTES = 1024


def reads_payload(detection: Detection, endpoint_url: str | None) -> bool:
    """Whether a payload without the header may still be a function error."""
    if detection == "auto":
        return endpoint_url is not None
    return detection == "payload"


def is_error_document(document: Any) -> bool:
    """True for a Lambda runtime's error document (module docstring), False for anything a
    handler is likely to return on purpose."""
    if not isinstance(document, dict) or not document.keys() <= ERROR_DOCUMENT_KEYS:
        return False
    error_type = document.get("errorType")
    return isinstance(error_type, str) and bool(error_type) \
        and isinstance(document.get("errorMessage"), str)


def failure_in_payload(payload: bytes) -> FunctionFailed | None:
    """The function error an emulator reported in the payload alone, else None."""
    if _RIE_TIMEOUT.fullmatch(payload):
        return FunctionFailed(TIMEOUT_ERROR_TYPE, payload.decode("ascii").strip())
    if not payload.lstrip().startswith(b"{"):
        return None
    try:
        document = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    return function_failed("Unhandled", payload) if is_error_document(document) else None


def function_failed(function_error: str, payload: bytes) -> FunctionFailed:
    """A FunctionFailed from the error payload: the document's type, message and stack when
    it is one, else `function_error` and an excerpt of the payload."""
    try:
        document = orjson.loads(payload) if payload.strip() else None
    except orjson.JSONDecodeError:
        document = None
    if not isinstance(document, dict):
        text = payload[:_EXCERPT_BYTES].decode("utf-8", "replace")
        return FunctionFailed(function_error, text)
    stack = document.get("stackTrace")
    return FunctionFailed(
        str(document.get("errorType") or function_error),
        str(document.get("errorMessage") or ""),
        tuple(str(line) for line in stack) if isinstance(stack, list) else (),
    )
