"""`esm redrive --to source` for RabbitMQ: publish dead-lettered messages to their queues.

`split_event` takes an `aws:rmq` event (a notice's payload) apart into its messages, each
with its `"<queue>::<vhost>"` key under `queueKey`; `publish_messages` publishes each body
(base64-decoded `data`) through the default exchange to its queue with its properties
rebuilt from `basicProperties` (headers back from AWS's encoding: `{"bytes": [...]}` to a
string when UTF-8, else bytes), mandatory and with publisher confirms, so a message is on
the broker (or SourceUnavailable names why not) before the next one goes. `userId` is kept
only when it names the publishing user, since RabbitMQ refuses any other.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

import pika  # type: ignore[import-untyped]

from connectors.rabbitmq.connection import CLIENT_ERRORS, connect
from connectors.rabbitmq.event import parse_gson_date
from connectors.rabbitmq.settings import BrokerAddress
from esm.errors import SourceUnavailable

QUEUE_KEY = "queueKey"


def split_event(event: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The messages of an `aws:rmq` event, in order, each with its `queueKey`."""
    grouped = event.get("rmqMessagesByQueue")
    if not isinstance(grouped, Mapping):
        return []
    return [{**message, QUEUE_KEY: key} for key, messages in grouped.items()
            if isinstance(messages, list) for message in messages
            if isinstance(message, Mapping)]


def publish_messages(parameters: Any, address: BrokerAddress, keys: Mapping[str, str],
                     records: Sequence[Mapping[str, Any]]) -> None:
    """Publish every message to its queue (see the module docstring)."""
    queue_of = {key: queue for queue, key in keys.items()}
    connection = connect(parameters, address)
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        for record in records:
            key = str(record.get(QUEUE_KEY) or next(iter(keys.values())))
            queue = queue_of.get(key) or key.removesuffix(f"::{address.vhost}")
            body = base64.b64decode(str(record.get("data") or ""))
            props = properties(record.get("basicProperties") or {}, address.user)
            channel.basic_publish("", queue, body, props, mandatory=True)
    except CLIENT_ERRORS as exc:
        raise SourceUnavailable(f"rabbitmq: publishing to {address.host}:{address.port} "
                                f"failed: {type(exc).__name__}: {exc}") from exc
    finally:
        if connection.is_open:
            connection.close()


def properties(basic: Mapping[str, Any], user: str | None) -> Any:
    """pika.BasicProperties from an event's `basicProperties`."""
    headers = basic.get("headers")
    timestamp = basic.get("timestamp")
    user_id = basic.get("userId")
    return pika.BasicProperties(
        content_type=basic.get("contentType"), content_encoding=basic.get("contentEncoding"),
        headers=None if headers is None else {k: header_value(v) for k, v in headers.items()},
        delivery_mode=basic.get("deliveryMode") or None, priority=basic.get("priority"),
        correlation_id=basic.get("correlationId"), reply_to=basic.get("replyTo"),
        expiration=basic.get("expiration"), message_id=basic.get("messageId"),
        timestamp=parse_gson_date(timestamp) if isinstance(timestamp, str) else None,
        type=basic.get("type"), user_id=user_id if user_id == (user or "guest") else None,
        app_id=basic.get("appId"), cluster_id=basic.get("clusterId"))


def header_value(value: Any) -> Any:
    """One header back from AWS's encoding (the inverse of `event.header_value` where
    it can be: Gson dates stay strings, numbers stay numbers)."""
    if isinstance(value, Mapping):
        raw = value.get("bytes")
        if len(value) == 1 and isinstance(raw, list):
            data = bytes(b & 0xFF for b in raw)
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError:
                return data
        return {k: header_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [header_value(v) for v in value]
    return value
