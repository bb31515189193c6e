"""Apache Kafka with secured listeners, for proving the Kafka security settings end to end.

One KRaft node (the jars of `kafka_server.py`) with:
- SASL_SSL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, and OAUTHBEARER with Kafka's unsecured-JWT
  validator) on `sasl_port`: PLAIN users come from the
  listener's JAAS line; SCRAM credentials are written when the storage is formatted
  (`kafka-storage format --add-scram`, KRaft's way to create SCRAM users before the first
  start; `kafka-configs --alter --add-config SCRAM-…` does the same on a running cluster);
- SSL with client certificates required (mutual TLS) on `ssl_port`;
- PLAINTEXT on `port` for the broker itself and for tests that create topics and produce.
Certificates are made with `openssl` into the server's folder: a CA, the broker's
certificate for 127.0.0.1/localhost, and a client certificate, as PEM files (Kafka reads
PEM key and trust stores, so no JKS and no keytool).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import kafka_server
from tests.servers.common import ServerUnavailable, free_port
from tests.servers.kafka_server import KafkaServer

USER, PASSWORD = "esm", "s3cret"
_SCRAM = ("SCRAM-SHA-256", "SCRAM-SHA-512")


def ensure_installed() -> None:
    kafka_server.ensure_installed()
    if shutil.which("openssl") is None:
        raise ServerUnavailable("openssl is not installed (apt-get install -y openssl)")


def _openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60)
    if done.returncode != 0:
        raise ServerUnavailable(f"openssl {args[0]} failed: {done.stderr[-1000:]}")


def make_certificates(folder: Path) -> None:
    """ca.pem, broker.pem (key + chain, Kafka's PEM key store), client.crt/client.key."""
    folder.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
             "/CN=esm-test-ca", "-keyout", "ca.key", "-out", "ca.pem", cwd=folder)
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("broker", "client"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout",
                 f"{name}.key", "-out", f"{name}.csr", cwd=folder)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", f"{name}.crt",
                 cwd=folder)
        # PKCS#8, as Kafka's PEM key store wants it
        _openssl("pkcs8", "-topk8", "-nocrypt", "-in", f"{name}.key", "-out",
                 f"{name}.p8.key", cwd=folder)
    (folder / "broker.pem").write_text((folder / "broker.p8.key").read_text()
                                       + (folder / "broker.crt").read_text())


class SecureKafkaServer(KafkaServer):
    """A KafkaServer whose properties add the SASL_SSL and SSL listeners."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.sasl_port = free_port()
        self.ssl_port = free_port()
        self.certs = workdir / "certs"

    @property
    def sasl_bootstrap(self) -> str:
        return f"127.0.0.1:{self.sasl_port}"

    @property
    def ssl_bootstrap(self) -> str:
        return f"127.0.0.1:{self.ssl_port}"

    def _write_properties(self) -> Path:
        props = super()._write_properties()
        lines = props.read_text().splitlines()
        c = self.certs
        replaced = {
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},"
                         f"CONTROLLER://127.0.0.1:{self.controller_port},"
                         f"SASL_SSL://127.0.0.1:{self.sasl_port},SSL://127.0.0.1:{self.ssl_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port},"
                                    f"SASL_SSL://127.0.0.1:{self.sasl_port},"
                                    f"SSL://127.0.0.1:{self.ssl_port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,"
                                              "SASL_SSL:SASL_SSL,SSL:SSL",
        }
        out = [f"{k}={replaced[k]}" if (k := line.partition("=")[0]) in replaced else line
               for line in lines]
        scram_login = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        out += [
            "inter.broker.listener.name=PLAINTEXT",
            "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512,OAUTHBEARER",
            # OAUTHBEARER with Kafka's default, unsecured-JWT validator: it checks the token's
            # shape and expiry, not a signature (MSK checks its SigV4 token instead)
            "listener.name.sasl_ssl.oauthbearer.sasl.jaas.config=org.apache.kafka.common."
            "security.oauthbearer.OAuthBearerLoginModule required;",
            "listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security."
            f'plain.PlainLoginModule required user_{USER}="{PASSWORD}";',
            f"listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config={scram_login}",
            f"listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={scram_login}",
            "ssl.keystore.type=PEM", f"ssl.keystore.location={c / 'broker.pem'}",
            "ssl.truststore.type=PEM", f"ssl.truststore.location={c / 'ca.pem'}",
            "listener.name.ssl.ssl.client.auth=required", "",
        ]
        props.write_text("\n".join(out))
        return props

    def format(self) -> None:
        make_certificates(self.certs)
        props = self._write_properties()
        import base64
        import uuid

        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        scram = [arg for mechanism in _SCRAM for arg in (
            "--add-scram", f"{mechanism}=[name={USER},password={PASSWORD}]")]
        done = subprocess.run(self._java("kafka.tools.StorageTool", "format",
                                         f"--cluster-id={cluster_id}", "-c", str(props),
                                         *scram), capture_output=True, timeout=120)
        if done.returncode != 0:
            raise ServerUnavailable(f"kafka storage format failed: {done.stderr[-2000:]!r}")


@pytest.fixture(scope="session")
def kafka_secure_server() -> Iterator[SecureKafkaServer]:
    """A running secured broker for the session; fails (never skips) if it cannot start."""
    ensure_installed()
    workdir = Path(tempfile.mkdtemp(prefix="esm-kafka-secure-"))
    server = SecureKafkaServer(workdir)
    try:
        server.format()
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
