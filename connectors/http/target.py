"""The `http` target: POST the event as JSON to a URL over pooled connections (DESIGN §6).

    2xx                              → Returned (body parsed as JSON; empty → None;
                                       not JSON → Returned(None, raw=body, valid_json=False))
    2xx + header X-Amz-Function-Error → FunctionFailed from the body, read as Lambda's error
                                       JSON {"errorType", "errorMessage", "stackTrace"}
    connect error, timeout, 429, 502, 503, 504, a broken response
                                     → raise InvokeError (retried without using up retries,
                                       ESM-SPEC §4.1)
    any other status                 → FunctionFailed("HttpError<status>", body excerpt)

Each request carries `X-Amz-Request-Id` and `Lambda-Runtime-Aws-Request-Id` (the event's
request id), so a Lambda-runtime-style server can log the id AWS would have used, and
`Idempotency-Key` (the event's key: the same when the same records are sent again).

A 429 or 503 with `Retry-After` (delay-seconds or an HTTP date, RFC 9110 §10.2.3) puts
the delay on the InvokeError: the lane waits at least that long before it tries again
(capped by the mapping's `retry_backoff.maximum_seconds`). A value that parses as neither
is ignored, and so is a date in the past.

Connections: one urllib3 pool of at most `max_connections` keep-alive connections; a call
waits up to its timeout for a free one. urllib3 retries and redirects are off: retries are
the failure policy's job, and a redirect on a POST is a misconfiguration worth seeing.
Header values are secrets (they usually carry tokens): they never appear in messages or
in the settings' repr, and neither does a password in the URL.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import orjson
import urllib3
from urllib3.exceptions import HTTPError, ReadTimeoutError

from esm.errors import ConfigError, InvokeError
from esm.interfaces import Clock, ConnectorContext
from esm.records import Event, FunctionFailed, InvokeResult, Returned

# Lambda's synchronous response limit is 6 MB; a larger answer is a function error there.
MAX_RESPONSE_BYTES = 6 * 1024 * 1024
RETRIABLE_STATUSES = frozenset({429, 502, 503, 504})
RETRY_AFTER_STATUSES = frozenset({429, 503})
_EXCERPT_BYTES = 1024


@dataclass(frozen=True, slots=True)
class HttpSettings:
    url: str = field(metadata={"doc": "http:// or https:// URL the event is POSTed to"})
    headers: dict[str, str] = field(default_factory=dict, repr=False, metadata={
        "doc": "extra request headers (e.g. Authorization)", "secret": True})
    timeout_seconds: float = field(default=30.0, metadata={
        "min": 0.1, "max": 900, "doc": "seconds to wait for the response"})
    connect_timeout_seconds: float = field(default=5.0, metadata={
        "min": 0.1, "max": 60, "doc": "seconds to wait for the TCP/TLS connection"})
    max_connections: int = field(default=10, metadata={
        "min": 1, "max": 1000, "doc": "keep-alive connections kept open to the URL"})
    verify_tls: bool = field(default=True, metadata={"doc": "check the server's certificate"})
    ca_file: str | None = field(default=None, metadata={
        "doc": "PEM file of CA certificates to trust instead of the system ones"})

    def __post_init__(self) -> None:
        problems = _url_problems(self.url) + _header_problems(self.headers)
        if self.ca_file is not None and not os.path.isfile(self.ca_file):
            problems.append(f"ca_file: {self.ca_file!r} is not a file")
        if problems:
            # One line: the config loader prefixes it with the target's path.
            raise ConfigError("; ".join(problems))


class HttpTarget:
    """POSTs events to one URL; thread-safe (urllib3 pools are)."""

    Settings = HttpSettings

    def __init__(self, settings: HttpSettings, context: ConnectorContext) -> None:
        self._settings = settings
        self._clock = context.clock
        self._where = f"POST {safe_url(settings.url)} (mapping {context.mapping!r})"
        self._headers = {"Content-Type": "application/json", **settings.headers}
        tls: dict[str, Any] = {"cert_reqs": "CERT_REQUIRED" if settings.verify_tls else "CERT_NONE"}
        if settings.ca_file:
            tls["ca_certs"] = settings.ca_file
        # No I/O here: urllib3 connects on the first request.
        self._pool = urllib3.PoolManager(
            num_pools=1, maxsize=settings.max_connections, block=True, **tls)

    def invoke(self, event: Event, timeout_seconds: float) -> InvokeResult:
        """POST the event; see the module docstring for how answers map to results."""
        response = self._post(event, timeout_seconds)
        try:
            body = self._read(response, timeout_seconds)
            status = response.status
            function_error = response.headers.get("X-Amz-Function-Error")
            retry_after = response.headers.get("Retry-After")
        finally:
            response.release_conn()
        if status in RETRIABLE_STATUSES:
            hint = retry_after_seconds(retry_after, self._clock) \
                if status in RETRY_AFTER_STATUSES else None
            raise InvokeError(f"{self._where}: HTTP {status}: {excerpt(body)}", hint)
        if 200 <= status < 300:
            if function_error:
                return function_failed_from(function_error, body)
            return returned_from(body)
        return FunctionFailed(f"HttpError{status}", f"HTTP {status}: {excerpt(body)}")

    def close(self) -> None:
        self._pool.clear()

    def _post(self, event: Event, timeout_seconds: float) -> urllib3.BaseHTTPResponse:
        headers = {**self._headers, "X-Amz-Request-Id": event.request_id,
                   "Lambda-Runtime-Aws-Request-Id": event.request_id}
        if event.idempotency_key:
            headers["Idempotency-Key"] = event.idempotency_key
        timeout = urllib3.Timeout(connect=self._settings.connect_timeout_seconds,
                                  read=timeout_seconds)
        try:
            return self._pool.request(
                "POST", self._settings.url, body=event.body, headers=headers, timeout=timeout,
                retries=False, redirect=False, preload_content=False,
                pool_timeout=timeout_seconds)
        except ReadTimeoutError as exc:
            raise InvokeError(f"{self._where}: no response within {timeout_seconds:.2f}s") from exc
        except HTTPError as exc:
            raise InvokeError(f"{self._where}: {type(exc).__name__}: {_reason(exc)}") from exc

    def _read(self, response: urllib3.BaseHTTPResponse, timeout_seconds: float) -> bytes:
        try:
            body = response.read(MAX_RESPONSE_BYTES + 1)
        except ReadTimeoutError as exc:
            response.close()
            raise InvokeError(f"{self._where}: response body not complete within "
                              f"{timeout_seconds:.2f}s") from exc
        except HTTPError as exc:
            response.close()
            raise InvokeError(f"{self._where}: reading the response: {_reason(exc)}") from exc
        if len(body) > MAX_RESPONSE_BYTES:
            response.close()  # the rest is unread: this connection cannot be reused
            raise InvokeError(f"{self._where}: response larger than {MAX_RESPONSE_BYTES} bytes")
        return body


def returned_from(body: bytes) -> Returned:
    """A normal response: JSON if it parses, None if empty, else kept raw (ESM-SPEC §4.2:
    with ReportBatchItemFailures, invalid JSON fails the whole batch)."""
    if not body.strip():
        return Returned(payload=None)
    try:
        return Returned(payload=orjson.loads(body))
    except orjson.JSONDecodeError:
        return Returned(payload=None, raw=body, valid_json=False)


def function_failed_from(function_error: str, body: bytes) -> FunctionFailed:
    """Lambda's error document → FunctionFailed; anything else keeps `function_error` as the
    type and the body as the message."""
    try:
        document = orjson.loads(body) if body.strip() else None
    except orjson.JSONDecodeError:
        document = None
    if not isinstance(document, dict):
        return FunctionFailed(function_error, excerpt(body))
    stack = document.get("stackTrace")
    return FunctionFailed(
        str(document.get("errorType") or function_error),
        str(document.get("errorMessage") or ""),
        tuple(str(line) for line in stack) if isinstance(stack, list) else (),
    )


def retry_after_seconds(value: str | None, clock: Clock) -> float | None:
    """`Retry-After` as seconds from now: delay-seconds, or an HTTP date (a date in the
    past is 0); None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": RFC 5322's "UTC, origin unknown"
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - clock.now())


def excerpt(body: bytes) -> str:
    text = body[:_EXCERPT_BYTES].decode("utf-8", "replace")
    return text + "..." if len(body) > _EXCERPT_BYTES else text


def safe_url(url: str) -> str:
    """The URL without credentials or query string (tokens live there), for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _reason(exc: HTTPError) -> str:
    # urllib3 wraps the socket error; its text names host and port but never headers.
    reason = getattr(exc, "reason", None) or exc
    return str(reason)


def _url_problems(url: str) -> list[str]:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        return [f"url: {exc}"]
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return [f"url: must be an http:// or https:// URL with a host, got {safe_url(url)!r}"]
    return []


def _header_problems(headers: dict[str, str]) -> list[str]:
    problems = []
    for name, value in headers.items():
        if not isinstance(name, str) or not name or any(c in name for c in "\r\n: "):
            problems.append(f"headers: {name!r} is not a valid header name")
        elif not isinstance(value, str) or "\r" in value or "\n" in value:
            # The value is secret: name the header, never show the value.
            problems.append(f"headers.{name}: value must be a string on one line")
    return problems
