"""Send messages to an ActiveMQ queue over AMQP 1.0: `esm redrive --to source`.

Each event message (ESM-SPEC §2.6 shape) goes back as the message it was: a text message for
`jms/text-message`, binary for `jms/bytes-message`, with its properties, correlation id,
reply-to, type (AMQP subject), priority and persistence. Messages go out in windows of
`WINDOW`; each window waits for the broker to accept every message in it (durable in the
queue) before the next is sent, so a failure leaves at most one window to send again.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any, cast

from proton import Delivery, Message, ProtonException, SSLDomain
from proton.utils import BlockingConnection

from connectors.activemq.event import BYTES, DEFAULT_PRIORITY
from esm.errors import SourceUnavailable

WINDOW = 200


def outgoing(record: Mapping[str, Any]) -> Message:
    """The AMQP message for one event message."""
    raw = base64.b64decode(record.get("data") or "")
    body: str | bytes = raw if record.get("messageType") == BYTES else raw.decode("utf-8")
    message = Message(body=body, durable=record.get("deliveryMode", 2) == 2)
    message.priority = int(record.get("priority", DEFAULT_PRIORITY))
    properties: Any = {str(k): str(v) for k, v in (record.get("properties") or {}).items()}
    message.properties = properties
    if record.get("correlationID"):
        message.correlation_id = str(record["correlationID"])
    if record.get("replyTo") not in (None, "", "null"):
        message.reply_to = str(record["replyTo"])
    if record.get("type"):
        message.subject = str(record["type"])
    return message


def send_messages(url: str, queue: str, records: Sequence[Mapping[str, Any]], *,
                  user: str | None, password: str | None, timeout_seconds: float) -> None:
    """Send every record to `queue`, in order; SourceUnavailable if the broker refuses one."""
    ssl = SSLDomain(SSLDomain.MODE_CLIENT) if url.startswith("amqps://") else None
    try:
        conn = BlockingConnection(url, timeout=timeout_seconds, ssl_domain=ssl, user=user,
                                  password=password, sasl_enabled=True,
                                  allow_insecure_mechs=True)
    except (ProtonException, OSError) as exc:
        raise SourceUnavailable(f"activemq: cannot connect to {url}: {exc}") from exc
    try:
        link = conn.create_sender(queue).link
        for start in range(0, len(records), WINDOW):
            # Sender.send(message) returns its Delivery (the int is for raw bytes)
            sent = [cast(Delivery, link.send(outgoing(r)))
                    for r in records[start:start + WINDOW]]
            _wait_settled(conn, sent, timeout_seconds, queue)
    except (ProtonException, OSError) as exc:
        raise SourceUnavailable(f"activemq: sending to queue {queue!r}: {exc}") from exc
    finally:
        conn.close()


def _wait_settled(conn: BlockingConnection, sent: list[Delivery], timeout_seconds: float,
                  queue: str) -> None:
    """Wait until the broker settled every delivery of `sent`; SourceUnavailable unless it
    accepted them all."""
    def answered() -> bool:
        return all(d.remote_state or d.settled for d in sent)

    conn.wait(answered, timeout=timeout_seconds, msg=f"sending to queue {queue!r}")
    refused = [d.remote_state for d in sent if d.remote_state != Delivery.ACCEPTED]
    for delivery in sent:
        delivery.settle()
    if refused:
        raise SourceUnavailable(f"activemq: queue {queue!r} refused {len(refused)} "
                                f"message(s): {refused[0]}")
