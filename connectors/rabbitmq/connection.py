"""Build pika's connection parameters for the `rabbitmq` source, and open a connection.

`pika.URLParameters` fails on a URL with a user and no password (the password comes from
`password_env`), so the parameters are built from the parsed URL plus the secret. No I/O
until `connect`. The password is kept in pika's PlainCredentials only, never logged.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from typing import Any

import pika  # type: ignore[import-untyped]

from connectors.rabbitmq.settings import BrokerAddress, RabbitMQSettings, TlsFiles, parse_url
from esm.errors import ConfigError, SourceUnavailable

# What pika raises when the broker is gone, refuses us, or closes the channel.
CLIENT_ERRORS: tuple[type[BaseException], ...] = (
    pika.exceptions.AMQPError, OSError, ssl.SSLError)
DEFAULT_USER = "guest"  # RabbitMQ's built-in user, as pika's own default


def read_password(settings: RabbitMQSettings,
                  environ: Mapping[str, str] | None = None) -> str | None:
    """The password from the variable `password_env` names (None without password_env)."""
    if settings.password_env is None:
        return None
    env = os.environ if environ is None else environ
    value = env.get(settings.password_env)
    if value is None:
        raise ConfigError(f"password_env: environment variable {settings.password_env} "
                          "is not set")
    return value


def connection_parameters(settings: RabbitMQSettings, password: str | None) -> Any:
    """pika.ConnectionParameters for `settings.url` (user and vhost from the URL)."""
    address = parse_url(settings.url)
    user = address.user or DEFAULT_USER
    credentials = pika.PlainCredentials(user, password if password is not None else
                                        (DEFAULT_USER if user == DEFAULT_USER else ""))
    options: dict[str, Any] = {
        "host": address.host, "port": address.port, "virtual_host": address.vhost,
        "credentials": credentials, "heartbeat": settings.heartbeat_seconds,
        "socket_timeout": settings.connect_timeout_seconds,
        "stack_timeout": settings.connect_timeout_seconds * 2,
        "blocked_connection_timeout": 300,
        "connection_attempts": 1,  # the supervisor retries with backoff (DESIGN §2)
        "client_properties": {"connection_name": "esm"},
    }
    if address.scheme == "amqps":
        options["ssl_options"] = pika.SSLOptions(
            tls_context(settings.tls or TlsFiles()),
            (settings.tls and settings.tls.server_hostname) or address.host)
    return pika.ConnectionParameters(**options)


def tls_context(files: TlsFiles) -> ssl.SSLContext:
    """A verifying client context; the system's CA bundle unless `ca_file` is given."""
    context = ssl.create_default_context(cafile=files.ca_file)
    if files.cert_file is not None:
        context.load_cert_chain(files.cert_file, files.key_file)
    return context


def connect(parameters: Any, address: BrokerAddress) -> Any:
    """A BlockingConnection; SourceUnavailable naming the broker (never the password)."""
    try:
        return pika.BlockingConnection(parameters)
    except CLIENT_ERRORS as exc:
        raise SourceUnavailable(
            f"rabbitmq: cannot connect to {address.scheme}://{address.host}:{address.port} "
            f"vhost {address.vhost!r}: {type(exc).__name__}: {exc}") from exc
