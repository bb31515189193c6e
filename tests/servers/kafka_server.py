"""Apache Kafka in KRaft mode (one combined broker+controller) for contract tests.

The broker jars come from Maven Central (`mvn dependency:copy-dependencies` on a generated
pom, cached in `cache_dir("kafka")`) and run on the machine's Java (17+ for Kafka 4).
One broker per test session; `KafkaServer.restart()` keeps its ports and log dir.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers.common import (
    ServerUnavailable,
    cache_dir,
    free_port,
    install_jars,
    stop_process,
)

KAFKA_VERSION = "4.1.1"
_POM = f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>esm.test</groupId><artifactId>kafka-server</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{KAFKA_VERSION}</version></dependency>
  </dependencies>
</project>
"""


# The broker's JVM in the tests: quick to start (C1 compiler only, serial GC, a small heap),
# for a suite that starts brokers often and runs each briefly.
TEST_JVM = ("-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1")
# As Kafka's own start scripts run it (kafka-server-start.sh's heap, kafka-run-class.sh's
# performance options): what the benchmarks measure against. With TEST_JVM the request path
# never gets the optimising compiler, which put ~0.13 ms on every record's latency.
SHIPPED_JVM = ("-Xmx1G", "-Xms1G", "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
               "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
               "-XX:MaxInlineLevel=15", "-Djava.awt.headless=true")


def libs_dir() -> Path:
    return cache_dir("kafka") / f"libs-{KAFKA_VERSION}"


def ensure_installed() -> None:
    """Fetch the broker jars once (idempotent); ServerUnavailable if Java or Maven fail."""
    libs = libs_dir()
    if (libs / f"kafka_2.13-{KAFKA_VERSION}.jar").exists():
        return
    install_jars("kafka", libs, _POM, f"Kafka {KAFKA_VERSION}",
                 java_package="openjdk-17-jre-headless")


class KafkaServer:
    """One KRaft node on free 127.0.0.1 ports with its log dir under `workdir`.
    `properties`: broker settings added to (or overriding) the defaults below, e.g.
    `{"group.coordinator.append.linger.ms": "0"}` for the benchmarks' cheap commits.
    `jvm`: the broker's JVM options (TEST_JVM, or SHIPPED_JVM for the benchmarks)."""

    def __init__(self, workdir: Path, properties: dict[str, str] | None = None,
                 jvm: tuple[str, ...] = TEST_JVM) -> None:
        self.workdir = workdir
        self.properties = dict(properties or {})
        self.jvm = jvm
        self.port = free_port()
        self.controller_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _write_properties(self) -> Path:
        props = self.workdir / "server.properties"
        props.write_text("\n".join([
            "process.roles=broker,controller", "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{self.port},"
            f"CONTROLLER://127.0.0.1:{self.controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            f"log.dirs={self.workdir / 'data'}",
            "offsets.topic.replication.factor=1", "offsets.topic.num.partitions=3",
            "transaction.state.log.replication.factor=1", "transaction.state.log.min.isr=1",
            "group.initial.rebalance.delay.ms=0", "num.partitions=1",
            "auto.create.topics.enable=false", "message.max.bytes=8388608",
            "replica.fetch.max.bytes=8388608",
            *(f"{key}={value}" for key, value in self.properties.items()), "",
        ]))
        return props

    def _java(self, main: str, *args: str, jvm: tuple[str, ...] | None = None) -> list[str]:
        return ["java", *(self.jvm if jvm is None else jvm), "-cp", f"{libs_dir()}/*", main,
                *args]

    def format(self) -> None:
        props = self._write_properties()
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        done = subprocess.run(self._java("kafka.tools.StorageTool", "format",
                                         f"--cluster-id={cluster_id}",
                                         "-c", str(props), jvm=TEST_JVM),
                              capture_output=True, timeout=120)
        if done.returncode != 0:
            raise ServerUnavailable(f"kafka storage format failed: {done.stderr[-2000:]!r}")

    def start(self, timeout_seconds: float = 90.0) -> None:
        log = open(self.workdir / "kafka.log", "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            self._java("kafka.Kafka", str(self.workdir / "server.properties")),
            stdout=log, stderr=subprocess.STDOUT)
        self.wait_ready(timeout_seconds)

    def wait_ready(self, timeout_seconds: float) -> None:
        """Until an admin client can list topics (the broker answers metadata)."""
        from kafka import KafkaAdminClient

        deadline = time.monotonic() + timeout_seconds
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise ServerUnavailable(f"kafka exited with {self.proc.returncode}; see "
                                        f"{self.workdir / 'kafka.log'}")
            try:
                admin = KafkaAdminClient(bootstrap_servers=self.bootstrap,
                                         request_timeout_ms=3000)
                try:
                    admin.list_topics()
                    return
                finally:
                    admin.close()
            except Exception as exc:  # not up yet
                last = exc
                time.sleep(0.3)
        raise ServerUnavailable(f"kafka did not answer on {self.bootstrap}: {last}")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout_seconds=30)
            self.proc = None

    def restart(self) -> None:
        """Stop and start again on the same ports and log dir (broker-restart tests)."""
        self.stop()
        self.start()


def start_kafka(workdir: Path, properties: dict[str, str] | None = None,
                jvm: tuple[str, ...] = TEST_JVM) -> KafkaServer:
    ensure_installed()
    server = KafkaServer(workdir, properties, jvm)
    server.format()
    server.start()
    return server


@pytest.fixture(scope="session")
def kafka_server() -> Iterator[KafkaServer]:
    """A running broker for the session; fails (never skips) when it cannot start."""
    workdir = Path(tempfile.mkdtemp(prefix="esm-kafka-"))
    server = start_kafka(workdir)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
