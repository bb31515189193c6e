"""Shared boto3 plumbing for the AWS connectors (SQS source, SQS/SNS destinations, ...).

The one module AWS connectors may share (connectors otherwise never import each other).
It holds: the common settings (region, endpoint_url, credentials, timeouts), a client
factory, a thread-safe lazily built client, error classification, and the notice encoder
used by the message-sized destinations.

Credentials: explicit keys when configured, else a named profile, else boto3's default
chain (environment, shared files, container/instance metadata).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import orjson

from esm.errors import DestinationError

log = logging.getLogger(__name__)

DEFAULT_REGION = "us-east-1"

# Error codes that mean "try again later" rather than "this request is wrong".
_TRANSIENT_CODES = frozenset({
    "InternalError", "InternalFailure", "ServiceUnavailable", "Throttling",
    "ThrottlingException", "RequestThrottled", "RequestTimeout", "KMS.ThrottlingException",
    "AWS.SimpleQueueService.ServiceUnavailable", "SlowDown",
})


@dataclass(frozen=True, slots=True, kw_only=True)
class AwsSettings:
    """Connection settings every AWS connector accepts."""

    region: str | None = field(default=None, metadata={
        "doc": "AWS region; default: from the queue URL / ARN, then the credential chain"})
    endpoint_url: str | None = field(default=None, metadata={
        "doc": "custom endpoint (ElasticMQ, LocalStack, VPC endpoint)"})
    access_key_id: str | None = field(default=None, metadata={
        "doc": "explicit access key; default: boto3's credential chain", "secret": True})
    secret_access_key: str | None = field(default=None, metadata={
        "doc": "explicit secret key", "secret": True})
    session_token: str | None = field(default=None, metadata={
        "doc": "session token for temporary credentials", "secret": True})
    profile: str | None = field(default=None, metadata={"doc": "shared-config profile name"})
    connect_timeout_seconds: float = field(default=5.0, metadata={
        "min": 0.1, "max": 60, "doc": "TCP connect timeout per request"})
    read_timeout_seconds: float = field(default=30.0, metadata={
        "min": 1, "max": 300, "doc": "socket read timeout per request (long polls add theirs)"})
    max_attempts: int = field(default=3, metadata={
        "min": 1, "max": 10, "doc": "botocore attempts per request (standard retry mode)"})


def region_for(settings: AwsSettings, resource: str | None = None) -> str:
    """The region to use: explicit setting, else parsed from an SQS URL or an ARN, else the
    default credential chain's region, else us-east-1."""
    if settings.region:
        return settings.region
    if resource:
        parsed = _region_from_resource(resource)
        if parsed:
            return parsed
    import boto3  # type: ignore[import-untyped]

    return boto3.session.Session(profile_name=settings.profile).region_name or DEFAULT_REGION


def _region_from_resource(resource: str) -> str | None:
    if resource.startswith("arn:"):
        parts = resource.split(":")
        return (parts[3] or None) if len(parts) > 3 else None
    host = urlparse(resource).hostname or ""
    labels = host.split(".")
    # sqs.us-east-2.amazonaws.com  /  us-east-2.queue.amazonaws.com (legacy)
    if len(labels) >= 4 and labels[0] == "sqs" and labels[-2] == "amazonaws":
        return labels[1]
    if len(labels) >= 4 and labels[1] == "queue" and labels[-2] == "amazonaws":
        return labels[0]
    return None


def make_client(service: str, settings: AwsSettings, *, region: str,
                extra_read_timeout_seconds: float = 0.0, max_pool_connections: int = 10) -> Any:
    """A boto3 client for `service`. No network I/O happens here (only config/credential
    files may be read). `extra_read_timeout_seconds` is added for long polls."""
    import boto3
    from botocore.config import Config  # type: ignore[import-untyped]

    session = boto3.session.Session(
        aws_access_key_id=settings.access_key_id,
        aws_secret_access_key=settings.secret_access_key,
        aws_session_token=settings.session_token,
        profile_name=settings.profile,
        region_name=region,
    )
    config = Config(
        connect_timeout=settings.connect_timeout_seconds,
        read_timeout=settings.read_timeout_seconds + extra_read_timeout_seconds,
        retries={"max_attempts": settings.max_attempts, "mode": "standard"},
        max_pool_connections=max_pool_connections,
    )
    return session.client(service, endpoint_url=settings.endpoint_url, config=config)


class LazyClient:
    """Builds the client on first use, once, from any thread (destinations are shared by
    lane workers; constructors must not do I/O)."""

    def __init__(self, service: str, settings: AwsSettings, region: str) -> None:
        self._service = service
        self._settings = settings
        self._region = region
        self._client: Any = None
        self._lock = threading.Lock()

    def get(self) -> Any:
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    self._client = make_client(self._service, self._settings,
                                               region=self._region, max_pool_connections=32)
                client = self._client
        return client

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError, else the exception class name."""
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):
        code = response.get("Error", {}).get("Code")
        if code:
            return str(code)
    return type(exc).__name__


def is_transient(exc: BaseException) -> bool:
    """True for connection problems, throttling and 5xx answers: worth retrying later."""
    response = getattr(exc, "response", None)
    if not isinstance(response, Mapping):
        return True  # BotoCoreError family: endpoint/connection/read timeout problems
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return error_code(exc) in _TRANSIENT_CODES or int(status) >= 500


def encode_notice(notice: Mapping[str, Any], max_bytes: int) -> str:
    """The notice as JSON text of at most `max_bytes`.

    AWS sends only metadata to SQS/SNS destinations (ESM-SPEC §4.5); esm adds `payload`
    (DESIGN §7). When the payload makes the message too large, it is dropped and
    `payloadOmitted` explains why, so the metadata still becomes durable instead of
    blocking the lane forever.
    """
    body = orjson.dumps(notice)
    if len(body) <= max_bytes or "payload" not in notice:
        return body.decode()
    slim = {k: v for k, v in notice.items() if k != "payload"}
    slim["payloadOmitted"] = f"notice was {len(body)} bytes, over the {max_bytes}-byte limit"
    log.warning("notice payload omitted: %d bytes over the %d-byte message limit",
                len(body), max_bytes)
    return orjson.dumps(slim).decode()


def fifo_params(mapping: str) -> dict[str, str]:
    """Message group and deduplication ids for a notice sent to a FIFO queue or topic: one
    group per mapping keeps its notices ordered; a fresh deduplication id per notice is reused
    by botocore's own retries, so a retried send is stored once."""
    return {"MessageGroupId": mapping or "esm", "MessageDeduplicationId": uuid.uuid4().hex}


def send_durably(operation: Callable[..., Any], what: str, **params: Any) -> None:
    """Run one send call; any failure means the notice is not durable (DestinationError)."""
    try:
        operation(**params)
    except Exception as exc:  # ClientError / BotoCoreError
        raise DestinationError(f"{what} failed: {error_code(exc)}: {exc}") from exc
