"""Settings of the `activemq` source and the checks the field metadata cannot express.

The password never sits in the settings: `password_env` names the environment variable the
source reads once, in its constructor (STYLE rule 4).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

URL_SCHEMES = ("amqp", "amqps")


@dataclass(frozen=True, slots=True)
class ActiveMQSettings:
    """`source:` keys for `type: activemq` (AMQP 1.0, ActiveMQ Classic or Amazon MQ)."""

    queue: str = field(metadata={"doc": "the queue to read (AWS reads one queue per mapping)"})
    url: str = field(default="amqp://localhost:5672", metadata={
        "doc": "amqp://host:port, or amqps:// for TLS (Amazon MQ: port 5671)"})
    username: str | None = field(default=None, metadata={
        "doc": "user name (BASIC_AUTH); leave out for an anonymous connection"})
    password_env: str | None = field(default=None, metadata={
        "doc": "name of the environment variable holding the password"})
    broker_arn: str | None = field(default=None, metadata={
        "doc": "the event's eventSourceArn (arn:aws:mq:…); default: the broker URL"})
    maximum_redeliveries: int = field(default=6, metadata={
        "min": 0, "max": 1000,
        "doc": "failed redeliveries before a message is dead-lettered: AWS uses ActiveMQ's "
               "policy with 6, so the 7th failed delivery goes to the on-failure destination, "
               "else is rejected into the broker's DLQ (ActiveMQ.DLQ)"})
    redelivery_delay_seconds: float = field(default=1.0, metadata={
        "min": 0, "max": 3600,
        "doc": "least wait before a failed message is handed back (ActiveMQ's default 1 s)"})
    credit: int = field(default=500, metadata={
        "min": 1, "max": 100_000,
        "doc": "AMQP link credit (prefetch): messages received but not yet handed to a batch"})
    slots: int = field(default=5, metadata={
        "min": 1, "max": 1000,
        "doc": "lanes, i.e. concurrent batches (AWS's concurrency for ActiveMQ is 5)"})
    connect_timeout_seconds: float = field(default=10.0, metadata={
        "min": 0.1, "max": 300, "doc": "time allowed to connect and attach the receiver"})
    idle_timeout_seconds: float = field(default=30.0, metadata={
        "min": 0, "max": 3600,
        "doc": "AMQP heartbeat: a broker silent this long counts as lost (0: off)"})

    @property
    def max_deliveries_with_destination(self) -> int:
        """Deliveries after which the core dead-letters to the on-failure destination; without
        a destination the source rejects the message instead (the broker's DLQ, as on AWS)."""
        return self.maximum_redeliveries + 1


def settings_problems(settings: ActiveMQSettings,
                      environ: Mapping[str, str] | None = None) -> list[str]:
    """Rules across fields, as `key: problem` strings."""
    environ = os.environ if environ is None else environ
    problems: list[str] = []
    if not settings.queue or not isinstance(settings.queue, str):
        problems.append("queue: must be a non-empty queue name")
    elif settings.queue.startswith(("topic://", "topic:")):
        problems.append("queue: only queues are read (as on AWS), not topics")
    problems += _url_problems(settings.url)
    if settings.password_env is not None:
        if settings.username is None:
            problems.append("password_env: needs username")
        elif settings.password_env not in environ:
            problems.append(f"password_env: environment variable {settings.password_env} "
                            "is not set")
    return problems


def mapping_problems(settings: ActiveMQSettings, mapping_data: Mapping[str, Any]) -> list[str]:
    """Every rule, relative to the mapping (`source.<key>: problem`). AWS refuses
    FunctionResponseTypes on MQ mappings (ESM-SPEC §2.6): a failed batch is retried whole."""
    problems = [f"source.{problem}" for problem in settings_problems(settings)]
    if mapping_data.get("function_response_types"):
        problems.append("function_response_types: not supported for ActiveMQ (as on AWS, a "
                        "function error retries the whole batch)")
    return problems


def _url_problems(url: str) -> list[str]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return [f"url: not a valid URL ({exc})"]
    if parts.scheme not in URL_SCHEMES:
        return [f"url: scheme must be amqp:// or amqps://, got {url!r}"]
    if not parts.hostname:
        return [f"url: names no host: {url!r}"]
    if parts.password:
        return ["url: must not hold a password; use username and password_env"]
    del port
    return []


def public_url(url: str) -> str:
    """The URL without user information, for logs and the default eventSourceArn."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return f"{parts.scheme}://{netloc}"
