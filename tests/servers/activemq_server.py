"""Apache ActiveMQ Classic with its AMQP 1.0 transport, for contract tests.

The broker jars come from Maven Central (`mvn dependency:copy-dependencies` on a generated
pom, cached in `cache_dir("activemq")`), like the Kafka harness. ActiveMQ ships no main class
that takes a broker URI in its jars (`activemq-console` is a separate, large artifact), so
the harness compiles a five-line launcher with `javac` at install time: it calls
`BrokerFactory.createBroker("broker:(amqp://127.0.0.1:PORT)?…")` and waits. KahaDB keeps
messages across `restart()` (a broker restart), as a real broker would.

    from tests.servers.activemq_server import activemq_server  # noqa: F401

When Java, Maven or the broker fail, tests FAIL (ServerUnavailable), never skip.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers.common import (
    ServerProcess,
    ServerUnavailable,
    cache_dir,
    free_port,
    install_jars,
)

ACTIVEMQ_VERSION = "6.1.8"
SLF4J_VERSION = "2.0.17"
_ARTIFACTS = [("org.apache.activemq", a, ACTIVEMQ_VERSION)
              for a in ("activemq-broker", "activemq-amqp", "activemq-kahadb-store",
                        "activemq-jaas")]  # jaas: the simple authentication plugin
_ARTIFACTS.append(("org.slf4j", "slf4j-simple", SLF4J_VERSION))
_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>esm.test</groupId><artifactId>activemq-server</artifactId><version>1</version>
  <dependencies>{deps}</dependencies>
</project>
""".format(deps="".join(
    f"<dependency><groupId>{g}</groupId><artifactId>{a}</artifactId><version>{v}</version>"
    "</dependency>" for g, a, v in _ARTIFACTS))
# args: broker URI [user password] — with a user, the simple authentication plugin
# requires it (Amazon MQ's BASIC_AUTH is the same plugin).
_LAUNCHER = """import org.apache.activemq.broker.*;
import org.apache.activemq.security.*;
public class EsmActiveMQ {
  public static void main(String[] args) throws Exception {
    BrokerService broker = BrokerFactory.createBroker(args[0]);
    if (args.length == 3) {
      broker.setPlugins(new BrokerPlugin[] {new SimpleAuthenticationPlugin(
          java.util.List.of(new AuthenticationUser(args[1], args[2], "users")))});
    }
    broker.start();
    broker.waitUntilStopped();
  }
}
"""


def libs_dir() -> Path:
    return cache_dir("activemq") / f"libs-{ACTIVEMQ_VERSION}"


def launcher_dir() -> Path:
    """Compiled launcher, per version of its source (a changed launcher is recompiled)."""
    digest = hashlib.sha256(_LAUNCHER.encode()).hexdigest()[:12]
    return cache_dir("activemq") / f"launcher-{digest}"


def ensure_installed() -> None:
    """Fetch the broker jars and compile the launcher once (idempotent)."""
    _fetch_jars()
    launcher = launcher_dir()
    if (launcher / "EsmActiveMQ.class").exists():
        return
    if shutil.which("javac") is None:
        raise ServerUnavailable("javac is not installed (apt-get install -y "
                                "openjdk-17-jdk-headless)")
    staging = launcher.with_name(launcher.name + "-staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    (staging / "EsmActiveMQ.java").write_text(_LAUNCHER)
    done = subprocess.run(["javac", "-cp", f"{libs_dir()}/*", "-d", str(staging),
                           str(staging / "EsmActiveMQ.java")], capture_output=True, text=True,
                          timeout=300)
    if done.returncode != 0:
        raise ServerUnavailable(f"javac could not compile the ActiveMQ launcher: {done.stderr}")
    shutil.rmtree(launcher, ignore_errors=True)
    staging.rename(launcher)


def _fetch_jars() -> None:
    libs = libs_dir()
    if all((libs / f"{a}-{v}.jar").exists() for _, a, v in _ARTIFACTS):
        return
    install_jars("activemq", libs, _POM, f"ActiveMQ {ACTIVEMQ_VERSION}",
                 java_package="openjdk-17-jdk-headless")


class ActiveMQServer(ServerProcess):
    """One broker on a free 127.0.0.1 AMQP port, data under its own temporary folder.

    `user`/`password`: when set, the simple authentication plugin requires them."""

    name = "activemq"

    def __init__(self, user: str | None = None, password: str | None = None) -> None:
        super().__init__()
        self.port = free_port()
        self.user = user
        self.password = password
        self._dir = Path(tempfile.mkdtemp(prefix="esm-activemq-"))

    @property
    def url(self) -> str:
        return f"amqp://127.0.0.1:{self.port}"

    def broker_uri(self) -> str:
        # jms.prefetchPolicy is not used by AMQP links (their credit is the prefetch); the
        # AMQP transport's default idle timeout would drop a paused test client after 30 s.
        return (f"broker:(amqp://127.0.0.1:{self.port}?transport.transformer=jms)"
                f"?brokerName=esm&useJmx=false&persistent=true&advisorySupport=false"
                f"&dataDirectory={self._dir / 'data'}&schedulerSupport=false")

    def start(self) -> None:
        ensure_installed()
        command = ["java", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                   "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                   "-cp", f"{launcher_dir()}:{libs_dir()}/*", "EsmActiveMQ", self.broker_uri()]
        if self.user is not None:
            command += [self.user, self.password or ""]
        self.launch(command, self._dir / "activemq.log", startup_seconds=60)

    def kill(self) -> None:
        """SIGKILL the broker (no clean shutdown), as a crashed broker host would."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait(10)
            self._proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)


@pytest.fixture(scope="session")
def activemq_server() -> Iterator[ActiveMQServer]:
    """A running broker for the session; fails (never skips) when it cannot start."""
    server = ActiveMQServer()
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def secured_activemq_server() -> Iterator[ActiveMQServer]:
    """A broker that requires user `esm`, password `s3cret` (Amazon MQ's BASIC_AUTH)."""
    server = ActiveMQServer(user="esm", password="s3cret")
    server.start()
    try:
        yield server
    finally:
        server.cleanup()
