"""The cause of a failed Kafka bootstrap, taken from what kafka-python logs meanwhile."""

from __future__ import annotations

import logging

from connectors.kafka import bootstrap_errors

AUTH = ("Bootstrap connection to bootstrap-0 failed: [Error 58] SaslAuthenticationFailedError: "
        "Authentication failed: Invalid username or password")


def test_the_last_connection_failure_explains_the_timeout() -> None:
    with bootstrap_errors.watch() as failures:
        logging.getLogger("kafka.net.manager").warning(AUTH)
        logging.getLogger("kafka.net.manager").warning("Bootstrap failed: KafkaTimeoutError: "
                                                       "Unable to bootstrap from ['b:9093']")
        logging.getLogger("kafka.net.manager").info("connecting")  # below WARNING: not kept
    text = failures.explain("KafkaTimeoutError: Unable to bootstrap from ['b:9093']")
    assert text.endswith(f"; last connection error: {AUTH}")


def test_without_a_logged_failure_the_error_stands_alone_and_nothing_stays_attached() -> None:
    with bootstrap_errors.watch() as failures:
        logging.getLogger("other").error("unrelated failure")
    assert failures.explain("boom") == "boom"
    logging.getLogger("kafka").warning("after the block: " + AUTH)
    assert failures.last is None


def test_a_later_bare_disconnect_does_not_hide_the_authentication_failure() -> None:
    log = logging.getLogger("kafka.net.manager")
    with bootstrap_errors.watch() as failures:
        log.warning("Bootstrap connection to bootstrap-0 failed: KafkaConnectionError: x")
        log.warning(AUTH)
        log.warning("Bootstrap connection to bootstrap-0 failed: KafkaConnectionError: "
                    "socket disconnected")
        logging.getLogger("kafka.net.transport").error(
            "<KafkaSSLTransport [127.0.0.1:9093<-4812]>: Abort (KafkaConnectionError: socket "
            "disconnected)")
    assert failures.last == AUTH
