"""Why a Kafka client could not reach its cluster, for the error esm reports.

librdkafka (confluent-kafka): constructing a client never fails on an unreachable cluster;
the reasons arrive on the `error_cb` callback while it retries. `ConnectionErrors` keeps the
most telling of them, and `check()` proves the cluster answers (a metadata request) before a
connector is declared open, naming the cause when it does not — a wrong bootstrap address, a
wrong password or a certificate the CA does not vouch for would otherwise look like an idle
topic. A wrong password or certificate ends the check at once (retrying cannot fix it).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from esm.errors import SourceUnavailable

# Errors retrying cannot fix: the check stops at the first one, and they win over a later
# bare "connection refused" or "all brokers down" when the cause is reported.
_PERMANENT = frozenset({
    KafkaError._AUTHENTICATION, KafkaError._SSL, KafkaError.SASL_AUTHENTICATION_FAILED,
    KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED,
    KafkaError.CLUSTER_AUTHORIZATION_FAILED, KafkaError.UNSUPPORTED_SASL_MECHANISM,
    KafkaError.ILLEGAL_SASL_STATE,
})
_CHECK_STEP_SECONDS = 0.5


class ConnectionErrors:
    """librdkafka's `error_cb` for one client (`on_error`), remembering the last error, the
    last permanent one and any fatal one. Thread-safe: librdkafka calls it from whichever
    thread serves the client's callbacks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.last: str | None = None
        self.permanent: str | None = None
        self.fatal: str | None = None

    def on_error(self, err: KafkaError) -> None:
        text = f"{err.name()}: {err.str()}"
        with self._lock:
            self.last = text
            if err.code() in _PERMANENT:
                self.permanent = text
            if err.fatal():
                self.fatal = text

    def cause(self) -> str | None:
        """The most telling error seen: fatal, else permanent, else the last one."""
        with self._lock:
            return self.fatal or self.permanent or self.last

    def explain(self, error: object) -> str:
        """`error`, followed by the most telling connection error when there was one."""
        cause = self.cause()
        return f"{error}; last connection error: {cause}" if cause else str(error)

    def check(self, client: Any, timeout_seconds: float, where: str,
              error: type[Exception] = SourceUnavailable) -> None:
        """Return once the cluster answers a metadata request; else raise `error` naming
        `where` and the cause, at once for a permanent one, else after `timeout_seconds`.
        For a consumer, call it before subscribing: its poll would consume a message."""
        deadline = time.monotonic() + timeout_seconds
        while True:
            client.poll(0)  # serves callbacks: error_cb, and oauth_cb before the first login
            try:
                client.list_topics(timeout=_CHECK_STEP_SECONDS)
                return
            except KafkaException as exc:
                failure: object = exc.args[0] if exc.args else exc
            with self._lock:
                settled = self.fatal or self.permanent
            if settled or time.monotonic() >= deadline:
                raise error(f"kafka {where}: {self.explain(failure)}")

    def raise_if_fatal(self, where: str) -> None:
        """librdkafka reported a fatal error: the client is unusable, the connector must be
        opened again."""
        if self.fatal:
            raise SourceUnavailable(f"kafka {where}: fatal client error: {self.fatal}")
