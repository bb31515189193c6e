"""What every librdkafka client of the Kafka connectors shares: the base configuration
(brokers, client id, security, errors and logs routed to Python) and a producer send that
returns only once the brokers acknowledged every message.

librdkafka prints its logs to stderr unless given a logger; here they go to the
`connectors.kafka.librdkafka` logger, so the daemon's log settings apply to them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from connectors.kafka.bootstrap_errors import ConnectionErrors

LIBRDKAFKA_LOG = logging.getLogger("connectors.kafka.librdkafka")

# (topic, key, value, headers) of one message to produce
Outgoing = tuple[str, bytes | None, bytes | None, Sequence[tuple[str, bytes]]]


def base_config(bootstrap_servers: Iterable[str], client_id: str,
                security: Mapping[str, Any], errors: ConnectionErrors) -> dict[str, Any]:
    """Configuration shared by consumers and producers; `security` from
    security.client_config."""
    return {
        "bootstrap.servers": ",".join(bootstrap_servers), "client.id": client_id,
        "error_cb": errors.on_error, "logger": LIBRDKAFKA_LOG,
        # An idle connection closed by the broker is routine, not worth a log line.
        "log.connection.close": False,
        **security,
    }


def producer_config(base: Mapping[str, Any], *, timeout_seconds: float) -> dict[str, Any]:
    """A producer that never reports success before every in-sync replica has the message
    (acks=all), retries without duplicating (idempotence) and gives up after the timeout."""
    return {
        **base, "acks": "all", "enable.idempotence": True,
        "message.timeout.ms": int(timeout_seconds * 1000),
        "message.max.bytes": 8 * 1024 * 1024,
        # Send at once: esm waits for the acks of every send, lingering only adds latency.
        "linger.ms": 0,
        # Java's partitioner (murmur2 of the key; null keys spread): a keyed record lands
        # in the partition a Java producer would pick, as redrive to source promises.
        "partitioner": "murmur2_random",
    }


class _Acks:
    """Delivery reports of one send_all call."""

    def __init__(self, expected: int) -> None:
        self.left = expected
        self.failures: list[str] = []
        self.lock = threading.Lock()

    def on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        with self.lock:
            self.left -= 1
            if err is not None:
                self.failures.append(f"{msg.topic()}: {err.name()}: {err.str()}")


def send_all(producer: Producer, messages: Sequence[Outgoing], timeout_seconds: float,
             errors: ConnectionErrors | None = None) -> None:
    """Produce `messages` and wait until the brokers acknowledged each one. Raises
    KafkaException naming the first failure (or the timeout, with the last connection error)
    when any is not acknowledged: none of them may be taken as written then."""
    acks = _Acks(len(messages))
    for topic, key, value, headers in messages:
        while True:
            try:
                producer.produce(topic, value=value, key=key, headers=list(headers) or None,
                                 on_delivery=acks.on_delivery)
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                producer.poll(0.1)
    left = producer.flush(timeout_seconds)
    with acks.lock:
        failures, unacknowledged = list(acks.failures), acks.left
    if failures:
        raise KafkaException(KafkaError(KafkaError._FAIL, f"{len(failures)} of "
                                        f"{len(messages)} messages not written; first: "
                                        f"{failures[0]}"))
    if left or unacknowledged:
        why = f"{unacknowledged} of {len(messages)} messages not acknowledged within " \
              f"{timeout_seconds:g} s"
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT,
                                        errors.explain(why) if errors else why))
