"""Settings of the `rabbitmq` source and the checks the field metadata cannot express.

The password never sits in the settings: `password_env` names an environment variable the
source reads once, in its constructor (STYLE rule 4); a URL that carries a password itself
is refused, so a secret never lands in a config file, a log line or an eventSourceArn. The
user comes from the URL (`amqp://esm@rabbit:5672/`), the virtual host from its path
(`/` when the path is empty or `/`; `%2F`-escaped names are unescaped, as AMQP URIs say).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

URL_SCHEMES = ("amqp", "amqps")
DEFAULT_PORTS = {"amqp": 5672, "amqps": 5671}
MAX_PREFETCH = 65535  # basic.qos prefetch-count is a 16-bit field


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """`tls:` for amqps:// (all optional: no files means the system's CA bundle)."""

    ca_file: str | None = field(default=None, metadata={
        "doc": "CA bundle that signed the broker's certificate"})
    cert_file: str | None = field(default=None, metadata={
        "doc": "client certificate for mutual TLS"})
    key_file: str | None = field(default=None, metadata={
        "doc": "client key for mutual TLS", "secret": True})
    server_hostname: str | None = field(default=None, metadata={
        "doc": "name to verify the certificate against (default: the URL's host)"})


@dataclass(frozen=True, slots=True)
class RabbitMQSettings:
    """`source:` keys for `type: rabbitmq` (queue family, ESM-SPEC §2.6)."""

    queues: tuple[str, ...] = field(metadata={
        "min_items": 1, "doc": "queues to consume from; each queue is a lane (or slots)"})
    url: str = field(default="amqp://localhost:5672/", metadata={
        "doc": "amqp://user@host:port/vhost or amqps://; vhost from the path, default /"})
    password_env: str | None = field(default=None, metadata={
        "doc": "name of the environment variable holding the user's password"})
    prefetch_count: int | None = field(default=None, metadata={
        "min": 1, "max": MAX_PREFETCH,
        "doc": "basic.qos prefetch: unacked messages esm holds at once, per queue; "
               "default 2 x batch_size x concurrency"})
    max_deliveries: int | None = field(default=None, metadata={
        "min": 1, "max": 1000,
        "doc": "failed deliveries after which a message goes to the on-failure destination "
               "(counted by esm at the target: a lost connection's returns, which quorum "
               "queues' x-delivery-count includes, do not count); default: the broker's "
               "delivery limit and dead-letter exchange decide"})
    event_source_arn: str | None = field(default=None, metadata={
        "doc": "eventSourceArn of the events; default arn:aws:mq:local:000000000000:broker:"
               "<host>:<vhost>"})
    tls: TlsFiles | None = field(default=None, metadata={"doc": "certificates for amqps://"})
    heartbeat_seconds: int = field(default=60, metadata={
        "min": 0, "max": 3600, "doc": "AMQP heartbeat; 0 turns it off"})
    connect_timeout_seconds: float = field(default=10.0, metadata={
        "min": 0.1, "max": 300, "doc": "TCP connect and AMQP handshake timeout"})


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """The parts of `url` a connection needs (no password: that comes from password_env)."""

    scheme: str
    host: str
    port: int
    user: str | None
    vhost: str


def parse_url(url: str) -> BrokerAddress:
    """The broker address of an amqp:// or amqps:// URL; ValueError naming what is wrong."""
    parts = urlsplit(url)
    if parts.scheme not in URL_SCHEMES:
        raise ValueError(f"scheme must be amqp:// or amqps://, got {parts.scheme or 'none'!r}")
    if parts.password is not None:
        raise ValueError("must not contain a password; name its environment variable in "
                         "password_env")
    if not parts.hostname:
        raise ValueError("names no host")
    if parts.query or parts.fragment:
        raise ValueError("query and fragment are not supported; use the source's keys "
                         "(tls, heartbeat_seconds, connect_timeout_seconds)")
    port = parts.port or DEFAULT_PORTS[parts.scheme]  # ValueError on a bad port
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    vhost = unquote(path) if path else "/"
    user = unquote(parts.username) if parts.username else None
    return BrokerAddress(parts.scheme, parts.hostname, port, user, vhost)


def settings_problems(settings: RabbitMQSettings) -> list[str]:
    """Rules across fields of the source settings, as `key: problem` strings."""
    problems: list[str] = []
    for index, queue in enumerate(settings.queues):
        if not queue:
            problems.append(f"queues[{index}]: must be a non-empty queue name")
        elif len(queue.encode()) > 255:
            problems.append(f"queues[{index}]: a queue name is at most 255 bytes")
    if len(set(settings.queues)) != len(settings.queues):
        problems.append("queues: must not list a queue twice")
    try:
        address = parse_url(settings.url)
    except ValueError as exc:
        return problems + [f"url: {exc}"]
    if settings.tls is not None and address.scheme != "amqps":
        problems.append("tls: needs an amqps:// url")
    tls = settings.tls
    if tls is not None and (tls.cert_file is None) != (tls.key_file is None):
        problems.append("tls: cert_file and key_file go together")
    if settings.password_env is not None and address.user is None:
        problems.append("password_env: the url names no user (amqp://USER@host/)")
    if settings.password_env == "":
        problems.append("password_env: must name an environment variable")
    return problems


def mapping_problems(settings: RabbitMQSettings, mapping: Mapping[str, Any]) -> list[str]:
    """Every rule, relative to the mapping (`source.<key>: problem`), for `check_mapping`.

    esm's dead-lettering needs both `max_deliveries` and an on-failure destination, as for
    SQS's `max_receive_count`: without `max_deliveries` a failing message is requeued until
    the broker's delivery limit or TTL sends it to its dead-letter exchange, as on AWS
    (ESM-SPEC §2.6), and a destination would only ever see oversized messages.
    """
    problems = [f"source.{problem}" for problem in settings_problems(settings)]
    destinations = mapping.get("destination_config")
    on_failure = destinations.get("on_failure") if isinstance(destinations, Mapping) else None
    if settings.max_deliveries is not None and not on_failure:
        problems.append("source.max_deliveries: needs destination_config.on_failure (where "
                        "messages that failed that often go)")
    return problems
