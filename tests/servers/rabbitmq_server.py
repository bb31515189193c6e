"""A real RabbitMQ broker for contract and integration tests (Debian package `rabbitmq-server`).

`RabbitMQServer` runs one broker as a plain process, never as a system service: the broker's
own start script under /usr/lib/rabbitmq/bin/ (the /usr/sbin wrapper switches to the
`rabbitmq` user), with its own node name, free ports for AMQP and Erlang distribution, a
private epmd on a free port (`ERL_EPMD_PORT`, started here in the foreground so it is stopped
by PID), and its config, cookie, data and logs in a temporary folder. The data folder
survives `restart()` (a broker restart keeps durable queues and persistent messages);
`kill()` is a crash (SIGKILL to the Erlang VM, by the PID the broker writes).

The broker has one user, `esm` with password `PASSWORD` (from any address), full rights on
the default virtual host `/`. It starts in about 5 s. The session fixture `rabbitmq_server`
yields a started one; tests that need it import it explicitly:

    from tests.servers.rabbitmq_server import rabbitmq_server  # noqa: F401

When the broker cannot be installed or started the tests FAIL (ServerUnavailable).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers.certs import make_certificates
from tests.servers.common import (
    FORCED_STOPS,
    ServerProcess,
    ServerUnavailable,
    ensure_debian_package,
    free_port,
    stop_process,
    wait_for_port,
)

PACKAGE = "rabbitmq-server"
SCRIPT_DIR = Path("/usr/lib/rabbitmq/bin")
USER = "esm"
PASSWORD = "esm-test-password"  # a test broker's only user, on 127.0.0.1
STARTUP_SECONDS = 60


def ensure_installed() -> None:
    """Install Debian's rabbitmq-server if it is missing (idempotent). Installing it does
    not start a broker where policy-rc.d forbids services (containers); the harness never
    uses a system broker either way."""
    if not (SCRIPT_DIR / "rabbitmq-server").exists():  # /usr/sbin may not be on PATH
        ensure_debian_package(PACKAGE, "rabbitmqctl")
    if not (SCRIPT_DIR / "rabbitmq-server").exists():
        raise ServerUnavailable(f"{SCRIPT_DIR}/rabbitmq-server missing after installing "
                                f"{PACKAGE}")
    if shutil.which("epmd") is None:
        raise ServerUnavailable("epmd (Erlang) not found after installing rabbitmq-server")


class RabbitMQServer(ServerProcess):
    """One broker; `url` is amqp://esm@127.0.0.1:<port>/ (the password comes separately)."""

    name = "rabbitmq-server"

    def __init__(self, tls: bool = False) -> None:
        super().__init__()
        self.port = free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self._dir = Path(tempfile.mkdtemp(prefix="esm-rabbitmq-"))
        self.node = f"esm{self.port}@localhost"
        self._epmd: subprocess.Popen[bytes] | None = None
        self._crashes = 0
        # With tls: an amqps listener too, on `tls_port`, requiring a client certificate
        # signed by the test CA (`tls_files`).
        self.tls_files = make_certificates(self._dir) if tls else None
        self.tls_port = free_port() if tls else None
        self._write_files()

    @property
    def url(self) -> str:
        return f"amqp://{USER}@127.0.0.1:{self.port}/"

    @property
    def url_with_password(self) -> str:
        return f"amqp://{USER}:{PASSWORD}@127.0.0.1:{self.port}/"

    def environ(self) -> dict[str, str]:
        """The environment the broker and its CLI tools run with."""
        d = self._dir
        env = dict(os.environ)
        env.update({
            "HOME": str(d),  # the Erlang cookie lives here
            "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(d / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(d / "rabbitmq-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
            "RABBITMQ_LOG_BASE": str(d / "log"),
            "RABBITMQ_PID_FILE": str(d / "rabbit.pid"),
        })
        return env

    def _write_files(self) -> None:
        d = self._dir
        (d / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            "loopback_users = none\n"
            f"default_user = {USER}\ndefault_pass = {PASSWORD}\n"
            "default_permissions.configure = .*\ndefault_permissions.read = .*\n"
            "default_permissions.write = .*\n"
            # a shared test machine: never block publishers for disk or memory alarms
            "disk_free_limit.absolute = 1MB\nvm_memory_high_watermark.relative = 0.9\n"
            + self._tls_config())
        (d / "advanced.config").write_text("[].\n")
        (d / "rabbitmq-env.conf").write_text("")
        (d / "enabled_plugins").write_text("[].\n")
        cookie = d / ".erlang.cookie"
        cookie.write_text(f"ESMTESTCOOKIE{self.port}")
        cookie.chmod(0o400)

    def _tls_config(self) -> str:
        files = self.tls_files
        if files is None:
            return ""
        return (f"listeners.ssl.default = 127.0.0.1:{self.tls_port}\n"
                f"ssl_options.cacertfile = {files.ca}\nssl_options.certfile = "
                f"{files.server_cert}\nssl_options.keyfile = {files.server_key}\n"
                "ssl_options.verify = verify_peer\nssl_options.fail_if_no_peer_cert = true\n")

    def start(self) -> None:
        ensure_installed()
        self._start_epmd()
        (self._dir / "rabbit.pid").unlink(missing_ok=True)
        log_path = self._dir / "broker.log"
        self._log_path = log_path
        with open(log_path, "ab") as log:
            self._proc = subprocess.Popen(
                [str(SCRIPT_DIR / "rabbitmq-server")], env=self.environ(), cwd=self._dir,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        try:
            wait_for_port(self.port, STARTUP_SECONDS, self._proc)
        except ServerUnavailable as exc:
            self.stop()
            raise ServerUnavailable(f"{self.name} did not start: {exc}\n{self.log_tail()}") \
                from exc

    def _start_epmd(self) -> None:
        if self._epmd is not None and self._epmd.poll() is None:
            return
        epmd = shutil.which("epmd") or "epmd"
        with open(self._dir / "epmd.log", "ab") as log:
            self._epmd = subprocess.Popen(
                [epmd, "-port", str(self.epmd_port), "-address", "127.0.0.1"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        wait_for_port(self.epmd_port, 10, self._epmd)

    def log_tail(self, chars: int = 2000) -> str:
        """The start script's output and the node's own log (where recovery after a crash
        and listener errors are written), each cut to its last `chars` characters."""
        node_logs = sorted((self._dir / "log").glob("*.log"))
        parts = [f"-- {self.name} output --\n{super().log_tail(chars)}"]
        for path in node_logs:
            try:
                parts.append(f"-- {path.name} --\n{path.read_text(errors='replace')[-chars:]}")
            except OSError:
                continue
        return "\n".join(parts)

    def boot_summary(self) -> str:
        """A few lines on every boot of this broker, short enough to survive a CI log's
        cuts: whether each boot found its database (feature flags already enabled) or
        began a new one, the node log's lines on recovery and deletion, and the database
        folder's files with their sizes."""
        try:
            output = (self._dir / "broker.log").read_text(errors="replace")
        except OSError:
            output = ""
        # A boot lists the feature flags it found: all unset ([ ]) on a new database.
        boots = ["found its database" if "[x]" in block[:1200] else "began a new database"
                 for block in output.split("list of feature flags found:")[1:]]
        wanted = re.compile(r"Recovering|transient queues|database directory|Starting RabbitMQ"
                            r"|Time to start|error|crash|not properly closed|Killed")
        node_lines: list[str] = []
        for path in sorted((self._dir / "log").glob("*.log")):
            try:
                text = path.read_text(errors="replace")
            except OSError:
                continue
            node_lines += [line[11:200] for line in text.splitlines() if wanted.search(line)]
        database = self._dir / "mnesia" / self.node
        files = sorted(f"{p.name}:{p.stat().st_size}" for p in database.glob("*")
                       if p.is_file()) if database.is_dir() else []
        queue_folders = len(list(database.glob("msg_stores/vhosts/*/queues/*")))
        return (f"boots: {', '.join(f'{n + 1} {b}' for n, b in enumerate(boots)) or 'none'}\n"
                + "\n".join(node_lines[-25:])
                + f"\ndatabase files: {' '.join(files) or '(none)'}; "
                f"queue folders in the message store: {queue_folders}")

    def assert_has_queue(self, queue: str) -> None:
        """After a restart: fails when the broker no longer has `queue`, with what it
        recovered and what its crash left on disk (a broker's loss, before esm reads)."""
        listing = self.queues_listing()
        if any(line.split("\t")[0] == queue for line in listing.splitlines()):
            return
        raise AssertionError(
            f"the restarted broker has no queue {queue!r}; its queues: {listing!r}\n"
            f"{self.boot_summary()}\n{self.crash_files_mention(queue)}")

    def queues_listing(self) -> str:
        """`rabbitmqctl list_queues` for failure messages: it reads the durable queue
        records too, so it tells a queue the broker forgot from one it cannot serve."""
        try:
            return self.ctl("list_queues", "-q", "name", "durable", "state", "messages",
                            timeout_seconds=30)
        except (ServerUnavailable, subprocess.TimeoutExpired) as exc:
            return f"(list_queues failed: {exc})"

    def broker_pid(self) -> int | None:
        """The Erlang VM's PID, as the broker wrote it (None before it did)."""
        try:
            return int((self._dir / "rabbit.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def kill(self) -> None:
        """A crash: SIGKILL the Erlang VM (connections drop without a close). The database
        files the crash left are copied aside (`crash_files_mention`)."""
        pid = self.broker_pid()
        if pid is not None:
            _signal(pid, signal.SIGKILL)
        if self._proc is not None:
            try:
                self._proc.wait(15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
            self._proc = None
        self._crashes += 1
        database = self._dir / "mnesia" / self.node
        try:  # for failure reports only: never the reason a crash test fails
            shutil.copytree(database, self._dir / f"crash-{self._crashes}",
                            ignore=shutil.ignore_patterns("msg_stores", "quorum", "coordination"))
        except OSError as exc:
            logging.getLogger("tests.servers").warning(
                "could not copy %s's database after its crash: %s", self.node, exc)

    def dump_metadata(self) -> None:
        """Have Mnesia dump its log into its table files, so that the queues declared so
        far are in those files before a test crashes the broker. Twice in CI a broker
        SIGKILLed a few seconds after its queue was declared came back without the queue
        (and so without its persistent messages); the cause is not known (see
        `assert_has_queue` for what such a failure reports). A test about what a crash
        does to connections, deliveries and acks calls this first."""
        output = self.ctl("eval", "mnesia:dump_log().", timeout_seconds=60).strip()
        if output != "dumped":
            raise ServerUnavailable(f"mnesia:dump_log() on {self.node} answered {output!r}")

    def crash_files_mention(self, text: str) -> str:
        """Which of the database files each crash left (before the restart read them)
        contain `text`, e.g. a queue's name: tells a declaration the broker never wrote
        from one its restart dropped."""
        lines = []
        for n in range(1, self._crashes + 1):
            folder = self._dir / f"crash-{n}"  # missing if the copy failed: names none
            holding = sorted(f"{p.name}:{p.stat().st_size}" for p in folder.glob("*")
                             if p.is_file() and text.encode() in p.read_bytes())
            lines.append(f"crash {n}: files naming {text!r}: {' '.join(holding) or 'none'}")
        return "\n".join(lines) or "no crash"

    def stop(self) -> None:
        """SIGTERM to the start script, which stops the broker cleanly; SIGKILL to the VM
        if it is still running after that."""
        pid = self.broker_pid()
        if self._proc is not None:
            stop_process(self._proc, timeout_seconds=30)
            self._proc = None
        if pid is not None and _alive(pid):
            FORCED_STOPS.append((f"{self.name} {self.node} (its Erlang VM)", 30))
            _signal(pid, signal.SIGKILL)

    def restart(self) -> None:
        """Stop (cleanly) and start again on the same ports and data."""
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.stop()
        if self._epmd is not None:
            stop_process(self._epmd)
            self._epmd = None
        shutil.rmtree(self._dir, ignore_errors=True)

    def ctl(self, *args: str, timeout_seconds: float = 60) -> str:
        """`rabbitmqctl ARGS` against this node; its output, or ServerUnavailable."""
        command = [str(SCRIPT_DIR / "rabbitmqctl"), "-n", self.node, *args]
        result = subprocess.run(command, env=self.environ(), cwd=self._dir,
                                capture_output=True, text=True, timeout=timeout_seconds,
                                check=False)
        if result.returncode != 0:
            raise ServerUnavailable(f"rabbitmqctl {' '.join(args)} failed: "
                                    f"{result.stdout}{result.stderr}")
        return result.stdout

    def connection(self, **options: Any) -> Any:
        """A pika BlockingConnection as user esm (for tests to publish and inspect)."""
        import pika

        credentials = pika.PlainCredentials(USER, PASSWORD)
        params = pika.ConnectionParameters("127.0.0.1", self.port, "/", credentials,
                                           **options)
        deadline = time.monotonic() + 30
        while True:
            try:
                return pika.BlockingConnection(params)
            except pika.exceptions.AMQPConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="session")
def rabbitmq_server() -> Iterator[RabbitMQServer]:
    server = RabbitMQServer()
    server.start()
    try:
        yield server
    finally:
        server.cleanup()
