"""Why kafka-python could not bootstrap, for the error esm reports.

kafka-python's consumer constructor gives up with only "Unable to bootstrap from HOST" after
its request timeout; the reason — a wrong SASL password, a certificate the CA does not
vouch for — is only in what it logs while it retries. `watch()` remembers the last
connection failure logged meanwhile, so `SourceUnavailable` can name the cause (and /mappings
and /readyz show it) instead of a bare timeout. kafka-python's messages carry no secrets.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager


class LastConnectionError(logging.Handler):
    """Keeps the last WARNING-or-worse kafka-python message about a failed connection."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.last: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "Unable to bootstrap" in message:  # the timeout itself, not its cause
            return
        if "failed" not in message.lower() and "error" not in message.lower():
            return
        # A broker may answer a failed login with an error or just close the socket; a bare
        # disconnect does not hide an authentication or TLS failure seen before it.
        if self.last is None or _specific(message) or not _specific(self.last):
            self.last = message

    def explain(self, error: object) -> str:
        """`error`, followed by the last connection failure when there was one."""
        return f"{error}; last connection error: {self.last}" if self.last else str(error)


# Error names, not words ("SSL" alone is in kafka-python's KafkaSSLTransport, on every line)
_SPECIFIC = ("AuthenticationFailed", "AuthorizationFailed", "SSLError", "CertVerification",
             "certificate")


def _specific(message: str) -> bool:
    return any(word in message for word in _SPECIFIC)


@contextmanager
def watch() -> Iterator[LastConnectionError]:
    """Collect kafka-python's connection failures while the block runs."""
    handler = LastConnectionError()
    logger = logging.getLogger("kafka")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
