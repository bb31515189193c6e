"""ElasticMQ as the SQS-compatible test server.

Why ElasticMQ over moto's server: compared side by side, both honour visibility timeouts,
ChangeMessageVisibility, receive counts and DeleteMessageBatch partial failures, but only
ElasticMQ behaves like SQS for FIFO queues: it returns several messages of one group in a
receive, blocks only the groups that have messages in flight, and sets `SequenceNumber`
(moto returns one message per group and no SequenceNumber, ESM-SPEC §2.1). ElasticMQ can
also persist queues and messages, so a restart keeps them (broker-restart tests).

Installed from Maven Central (`org.elasticmq:elasticmq-server_2.13`) with
`mvn dependency:copy-dependencies` into the harness cache, run with the machine's Java.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers.common import (
    ServerProcess,
    ServerUnavailable,
    cache_dir,
    free_port,
    stop_process,
)

VERSION = "1.7.1"
REGION = "us-east-1"
ACCOUNT = "000000000000"
CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}

_POM = f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>esm.test</groupId><artifactId>elasticmq-fetch</artifactId><version>1</version>
  <dependencies><dependency>
    <groupId>org.elasticmq</groupId><artifactId>elasticmq-server_2.13</artifactId>
    <version>{VERSION}</version>
  </dependency></dependencies>
</project>
"""


def _lib_dir() -> Path:
    return cache_dir("elasticmq") / VERSION / "lib"


def ensure_installed() -> None:
    """Download the ElasticMQ jars once (idempotent); ServerUnavailable if impossible."""
    lib = _lib_dir()
    if any(lib.glob("elasticmq-server_2.13-*.jar")):
        return
    for tool in ("java", "mvn"):
        if shutil.which(tool) is None:
            raise ServerUnavailable(f"ElasticMQ needs `{tool}` on PATH (apt-get install -y "
                                    f"{'default-jre-headless' if tool == 'java' else 'maven'})")
    work = lib.parent
    work.mkdir(parents=True, exist_ok=True)
    (work / "pom.xml").write_text(_POM)
    result = subprocess.run(
        ["mvn", "-q", "-B", "dependency:copy-dependencies", f"-DoutputDirectory={lib}"],
        cwd=work, capture_output=True, text=True, timeout=600)
    if result.returncode != 0 or not any(lib.glob("elasticmq-server_2.13-*.jar")):
        raise ServerUnavailable("could not fetch ElasticMQ from Maven Central:\n"
                                + (result.stdout + result.stderr)[-2000:])


STOP_SECONDS = 30


class SqsServer(ServerProcess):
    """One ElasticMQ process on 127.0.0.1:<free port>, data persisted in a temp dir."""

    name = "ElasticMQ"

    def __init__(self) -> None:
        super().__init__()
        self.port = free_port()
        self.data_dir = Path(tempfile.mkdtemp(prefix="esm-elasticmq-"))
        self.endpoint_url = f"http://127.0.0.1:{self.port}"

    def _write_config(self) -> Path:
        conf = self.data_dir / "elasticmq.conf"
        # H2 writes commits to its file up to a second late by default: a broker that is
        # killed (a restart whose SIGTERM timed out) lost its last second of sent messages
        # (10 and 24 of 100 in two checks), and a damage scenario counted them as esm's
        # loss. With WRITE_DELAY=0 every committed send is in the file: 100 of 100 in 15
        # checks (one more, whose reader stopped at its first empty receive, read none).
        conf.write_text(f"""include classpath("application.conf")
node-address {{ protocol = http, host = 127.0.0.1, port = {self.port}, context-path = "" }}
rest-sqs {{ enabled = true, bind-port = {self.port}, bind-hostname = "127.0.0.1",
            sqs-limits = strict }}
rest-stats {{ enabled = false }}
messages-storage {{ enabled = true, uri = "jdbc:h2:{self.data_dir / 'messages'};WRITE_DELAY=0" }}
queues-storage {{ enabled = true, path = "{self.data_dir / 'queues.conf'}" }}
aws {{ region = {REGION}, accountId = "{ACCOUNT}" }}
""")
        return conf

    def start(self) -> None:
        ensure_installed()
        conf = self._write_config()
        command = ["java", "-Xmx256m", f"-Dconfig.file={conf}", "-cp", f"{_lib_dir()}/*",
                   "org.elasticmq.server.Main"]
        self.launch(command, self.data_dir / "server.log", startup_seconds=60)

    def client(self, **config: Any) -> Any:
        import boto3

        return boto3.client("sqs", endpoint_url=self.endpoint_url, region_name=REGION,
                            **CREDENTIALS, **config)

    def create_queue(self, fifo: bool = False, visibility_timeout: int = 30,
                     **attributes: str) -> str:
        """A fresh, uniquely named queue; returns its URL."""
        name = f"q-{uuid.uuid4().hex[:12]}" + (".fifo" if fifo else "")
        attrs = {"VisibilityTimeout": str(visibility_timeout), **attributes}
        if fifo:
            attrs.update(FifoQueue="true", ContentBasedDeduplication="true")
        return str(self.client().create_queue(QueueName=name, Attributes=attrs)["QueueUrl"])

    def stop(self) -> None:
        """SIGTERM, and up to 30 s for ElasticMQ to exit. Its shutdown can wait about 20 s
        for HTTP connections that clients keep open (2 stops in 6 of the damage suite's
        broker restart, 9 in 10 with a client sending every 5 ms). With the usual 10 s,
        those stops ended in SIGKILL: a crash, not the clean restart the scenario is
        about."""
        if self._proc is not None:
            stop_process(self._proc, timeout_seconds=STOP_SECONDS)
            self._proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def sqs_server() -> Iterator[SqsServer]:
    """A running ElasticMQ for the session. Fails (never skips) when it cannot start."""
    server = SqsServer()
    try:
        server.start()
    except ServerUnavailable as exc:
        server.cleanup()
        pytest.fail(f"SQS test server unavailable: {exc}", pytrace=False)
    yield server
    server.cleanup()
