"""The RabbitMQ source over amqps:// with the `tls` files (mutual TLS) against a real broker
whose TLS listener requires a client certificate signed by a test CA."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from connectors.rabbitmq.settings import RabbitMQSettings, TlsFiles
from connectors.rabbitmq.source import RabbitMQSource
from esm.clock import SystemClock
from esm.errors import SourceUnavailable
from esm.interfaces import ConnectorContext
from tests.contract.test_rabbitmq_contract import (
    ENV,
    Listener,
    new_queue,
    poll_until,
    publish,
)
from tests.servers.rabbitmq_server import USER, RabbitMQServer


@pytest.fixture(scope="module")
def tls_server() -> Iterator[RabbitMQServer]:
    server = RabbitMQServer(tls=True)
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


def tls_source(server: RabbitMQServer, queue: str, tls: TlsFiles) -> RabbitMQSource:
    settings = RabbitMQSettings(queues=(queue,), url=f"amqps://{USER}@localhost:{server.tls_port}/",
                                password_env="RMQ_PASSWORD", tls=tls)
    context = ConnectorContext("tls", threading.Event(), SystemClock(), batch_size=10)
    return RabbitMQSource(settings, context, environ=ENV)


def test_amqps_with_a_client_certificate_reads_and_acks(tls_server: RabbitMQServer) -> None:
    files = tls_server.tls_files
    assert files is not None
    queue = new_queue(tls_server)
    publish(tls_server, queue, [b"over tls"])
    source = tls_source(tls_server, queue, TlsFiles(
        ca_file=str(files.ca), cert_file=str(files.client_cert),
        key_file=str(files.client_key)))
    source.open(Listener())
    [record] = poll_until(source, 1)
    assert record.payload["data"] == "b3ZlciB0bHM="
    source.ack([record])
    source.close()


def test_amqps_without_the_ca_or_a_client_certificate_is_refused(
        tls_server: RabbitMQServer) -> None:
    files = tls_server.tls_files
    assert files is not None
    queue = new_queue(tls_server)
    for tls in (TlsFiles(),  # the system's CAs do not know the test CA
                TlsFiles(ca_file=str(files.ca))):  # the broker requires a client certificate
        with pytest.raises(SourceUnavailable, match="cannot connect"):
            tls_source(tls_server, queue, tls).open(Listener())
