"""The cause of a failed Kafka bootstrap, taken from what the client reports meanwhile."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException

from connectors.kafka.bootstrap_errors import ConnectionErrors
from esm.errors import DestinationError, SourceUnavailable

REFUSED = KafkaError(KafkaError._TRANSPORT, "b:1/bootstrap: Connect to ipv4#127.0.0.1:1 "
                     "failed: Connection refused")
BAD_LOGIN = KafkaError(KafkaError._AUTHENTICATION, "SASL authentication error: "
                       "Authentication failed due to invalid credentials")


class Unreachable:
    """A client whose metadata requests fail, reporting `reported` through error_cb."""

    def __init__(self, errors: ConnectionErrors, reported: list[KafkaError]) -> None:
        self.errors = errors
        self.reported = reported
        self.requests = 0

    def poll(self, timeout: float) -> None:
        for err in self.reported:
            self.errors.on_error(err)

    def list_topics(self, timeout: float) -> None:
        self.requests += 1
        raise KafkaException(KafkaError(KafkaError._TRANSPORT, "Failed to get metadata"))


def test_a_wrong_password_ends_the_check_at_once_and_is_named_over_later_refusals() -> None:
    errors = ConnectionErrors()
    client = Unreachable(errors, [BAD_LOGIN, REFUSED])
    with pytest.raises(SourceUnavailable) as raised:
        errors.check(client, timeout_seconds=60, where="source b:1")
    assert client.requests == 1  # permanent: not retried for a minute
    assert str(raised.value).startswith("kafka source b:1: KafkaError{code=_TRANSPORT")
    assert str(raised.value).endswith("last connection error: _AUTHENTICATION: SASL "
                                      "authentication error: Authentication failed due to "
                                      "invalid credentials")


def test_a_refused_connection_is_retried_until_the_timeout_then_named() -> None:
    errors = ConnectionErrors()
    client = Unreachable(errors, [REFUSED])
    with pytest.raises(DestinationError, match="kafka destination 'dlq': .*Connection refused"):
        errors.check(client, timeout_seconds=0.6, where="destination 'dlq'",
                     error=DestinationError)
    assert client.requests >= 2


def test_a_fatal_error_is_raised_on_the_next_turn() -> None:
    errors = ConnectionErrors()
    errors.raise_if_fatal("source")  # nothing reported: nothing raised
    errors.on_error(KafkaError(KafkaError._FENCED, "fenced", fatal=True))
    with pytest.raises(SourceUnavailable, match="kafka source: fatal client error: _FENCED"):
        errors.raise_if_fatal("source")
