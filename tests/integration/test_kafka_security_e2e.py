"""The Kafka security settings end to end: `esm run` reads a real broker through a SASL_SSL
listener with SASL/PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512, and through an SSL listener that
requires a client certificate (mutual TLS), each with the test CA as
`server_root_ca_file`. A wrong password is named in /mappings and keeps /readyz not ready.

`auth: AWS_MSK_IAM` runs in-process against the same SASL_SSL listener's OAUTHBEARER, with
Kafka's unsecured-JWT validator: the token provider's signer makes an unsecured JWT instead of
MSK's SigV4 URL (which only MSK can check). What is proved is esm's side: the options, the
token callback librdkafka calls, and MSK's event shape from `msk_cluster_arn`.

Records are produced on the broker's plaintext listener; what is proved is the consumer's
side: each mode connects, joins the group, reads, invokes and commits.
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from connectors.kafka import msk
from connectors.kafka.destination import KafkaDestination
from esm.config.loading import load_config
from esm.errors import DestinationError
from esm.runtime.daemon import Daemon
from tests.contract.test_kafka_source import make_topic
from tests.integration.e2e_support import DaemonProcess, daemon_env, wait_until, write_config
from tests.integration.kafka_e2e_support import journal_lines, kafka_mapping, produce, read_topic
from tests.servers.kafka_secure_server import (  # noqa: F401
    PASSWORD,
    USER,
    SecureKafkaServer,
    kafka_secure_server,
)

pytestmark = pytest.mark.integration

PASSWORD_ENV = "ESM_TEST_KAFKA_PASSWORD"


def sasl(server: SecureKafkaServer, auth: str) -> dict[str, Any]:
    return {"bootstrap_servers": [server.sasl_bootstrap], "auth": auth, "username": USER,
            "password_env": PASSWORD_ENV, "tls": True,
            "server_root_ca_file": str(server.certs / "ca.pem")}


def mutual_tls(server: SecureKafkaServer) -> dict[str, Any]:
    return {"bootstrap_servers": [server.ssl_bootstrap], "auth": "CLIENT_CERTIFICATE_TLS_AUTH",
            "server_root_ca_file": str(server.certs / "ca.pem"),
            "client_certificate_file": str(server.certs / "client.crt"),
            "client_key_file": str(server.certs / "client.key")}


def run_mapping(tmp_path: Path, server: SecureKafkaServer, security: dict[str, Any],
                password: str) -> tuple[DaemonProcess, Path]:
    topic = make_topic(server, 1)
    produce(server, topic, 1, 5)
    mapping = kafka_mapping(server, topic, f"g-{uuid.uuid4().hex[:8]}")
    mapping["source"].update(security)
    config = write_config(tmp_path, [mapping])
    journal = tmp_path / "journal.jsonl"
    env = {**daemon_env(journal), PASSWORD_ENV: password}
    return DaemonProcess(config, env, tmp_path / "daemon.log"), journal


@pytest.mark.parametrize("mode", ["BASIC_AUTH", "SASL_SCRAM_256_AUTH", "SASL_SCRAM_512_AUTH",
                                  "CLIENT_CERTIFICATE_TLS_AUTH"])
def test_each_security_mode_reads_the_topic_end_to_end(
        tmp_path: Path, kafka_secure_server: SecureKafkaServer, mode: str) -> None:  # noqa: F811
    server = kafka_secure_server
    security = mutual_tls(server) if mode == "CLIENT_CERTIFICATE_TLS_AUTH" else sasl(server, mode)
    daemon, journal = run_mapping(tmp_path, server, security, PASSWORD)
    with daemon:
        daemon.wait_ready()
        wait_until(lambda: len(journal_lines(journal, "ok")) >= 5, 60,
                   lambda: f"{journal_lines(journal)}\n{daemon.log_tail()}")
    assert sorted(line["offset"] for line in journal_lines(journal, "ok")) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("mode", ["BASIC_AUTH", "SASL_SCRAM_512_AUTH"])
def test_wrong_password_is_named_and_readyz_stays_not_ready(
        tmp_path: Path, kafka_secure_server: SecureKafkaServer, mode: str) -> None:  # noqa: F811
    daemon, journal = run_mapping(tmp_path, kafka_secure_server,
                                  sasl(kafka_secure_server, mode), "wrong")
    with daemon:
        def named() -> bool:
            status, body = daemon.get("/mappings")
            return status == 200 and "uthentication failed" in body
        wait_until(named, 60, lambda: f"{daemon.get('/mappings')}\n{daemon.log_tail()}")
        assert daemon.get("/readyz")[0] != 200
        assert journal_lines(journal) == []
        assert "wrong" not in daemon.log_tail(100_000)


def test_the_destination_writes_over_sasl_ssl_and_names_a_wrong_password(
        kafka_secure_server: SecureKafkaServer,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a dead-letter topic behind the SCRAM-SHA-512 listener
    from tests.unit.kafka.test_kafka_destination import record
    server = kafka_secure_server
    topic = make_topic(server, 1)
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    settings = {**sasl(server, "SASL_SCRAM_512_AUTH"), "topic": topic, "timeout_seconds": 20}
    settings["bootstrap_servers"] = tuple(settings["bootstrap_servers"])
    # When a failed record is sent with the right password, Then it is on the topic
    dest = KafkaDestination(KafkaDestination.Settings(**settings), None)
    dest.send({}, [record(3)])
    dest.close()
    assert [m.key for m in read_topic(server, topic, 1)] == [b"k1"]
    # And with a wrong one the send fails at once, naming the failed authentication
    monkeypatch.setenv(PASSWORD_ENV, "wrong")
    dest = KafkaDestination(KafkaDestination.Settings(**settings), None)
    with pytest.raises(DestinationError, match="uthentication failed"):
        dest.send({}, [record(4)])


ARN = "arn:aws:kafka:eu-west-1:123456789012:cluster/orders/751d2973-a626-431c-9d4e-d7975eb44dd7-2"


def unsecured_jwt(region: str) -> tuple[str, int]:
    """What Kafka's unsecured validator accepts, in the signer's (token, expiry ms) form."""
    def part(document: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")
    now = int(time.time())
    claims = {"sub": f"esm-{region}", "iat": now, "exp": now + 900}
    return f"{part({'alg': 'none'})}.{part(claims)}.", (now + 900) * 1000


def write_event(event: dict[str, Any], context: Any) -> None:
    """The MSK test's target: appends each event to the file named by ESM_TEST_EVENTS."""
    with open(os.environ["ESM_TEST_EVENTS"], "a") as out:
        out.write(json.dumps(event) + "\n")


def test_msk_iam_connects_with_oauthbearer_and_events_take_the_msk_shape(
        tmp_path: Path, kafka_secure_server: SecureKafkaServer,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    server = kafka_secure_server
    topic = make_topic(server, 1)
    produce(server, topic, 1, 3)
    events = tmp_path / "events.jsonl"
    monkeypatch.setenv("ESM_TEST_EVENTS", str(events))
    signed: list[str] = []
    monkeypatch.setattr(msk, "default_signer",
                        lambda region: (signed.append(region), unsecured_jwt(region))[1])
    mapping = kafka_mapping(server, topic, f"g-{uuid.uuid4().hex[:8]}")
    mapping["source"].update(bootstrap_servers=[server.sasl_bootstrap], auth="AWS_MSK_IAM",
                             msk_cluster_arn=ARN,
                             server_root_ca_file=str(server.certs / "ca.pem"))
    mapping["target"] = {"type": "python",
                         "handler": "tests.integration.test_kafka_security_e2e:write_event"}
    daemon = Daemon(load_config([str(write_config(tmp_path, [mapping]))], {}))
    daemon.start()
    try:
        def read() -> list[dict[str, Any]]:
            return [json.loads(line) for line in events.read_text().splitlines()] \
                if events.exists() else []
        wait_until(lambda: sum(len(r) for e in read() for r in e["records"].values()) >= 3,
                   60, lambda: f"events so far: {read()}")
    finally:
        daemon.shutdown()
    first = read()[0]
    assert (first["eventSource"], first["eventSourceArn"]) == ("aws:kafka", ARN)
    assert first["bootstrapServers"] == server.sasl_bootstrap
    assert signed and set(signed) == {"eu-west-1"}  # the ARN's region
