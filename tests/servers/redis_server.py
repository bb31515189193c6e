"""A real `redis-server` for contract tests (Debian package `redis-server`).

`RedisServer` runs one server as a subprocess on a free 127.0.0.1 port with its data in a
temporary folder and append-only persistence on, so `restart()` (a broker restart) keeps
the streams, groups and pending lists. The session fixture `redis_server` yields a started
one; tests that need it import it explicitly:

    from tests.servers.redis_server import redis_server  # noqa: F401

When redis-server cannot be installed or started the tests FAIL (ServerUnavailable).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers.common import ServerUnavailable, free_port, stop_process, wait_for_port

PACKAGE = "redis-server"


def redis_binary() -> str | None:
    return shutil.which("redis-server")


def ensure_installed() -> None:
    """Install Debian's redis-server if it is missing (idempotent); apt-get update only
    when the first install attempt cannot find the package."""
    if redis_binary():
        return
    if not _apt("install", "-y", PACKAGE):
        _apt("update")
        _apt("install", "-y", PACKAGE)
    if not redis_binary():
        raise ServerUnavailable(f"redis-server not found and `apt-get install -y {PACKAGE}` "
                                "did not provide it")


def _apt(*args: str) -> bool:
    try:
        result = subprocess.run(["apt-get", *args], capture_output=True, check=False,
                                timeout=600)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


class RedisServer:
    """One redis-server subprocess; `url` is redis://127.0.0.1:<port>/0. `appendfsync` is
    "always" so a restart keeps every acknowledged write; benchmarks pass "everysec"."""

    def __init__(self, appendfsync: str = "always") -> None:
        self.port = free_port()
        self.appendfsync = appendfsync
        self._dir = Path(tempfile.mkdtemp(prefix="esm-redis-"))
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        ensure_installed()
        binary = redis_binary()
        assert binary is not None
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1",
                   "--dir", str(self._dir), "--appendonly", "yes",
                   "--appendfsync", self.appendfsync,
                   "--save", "", "--protected-mode", "no", "--daemonize", "no",
                   "--logfile", str(self._dir / "redis.log")]
        self._proc = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
        try:
            wait_for_port(self.port, 20, self._proc)
        except ServerUnavailable as exc:
            raise ServerUnavailable(f"{exc}; log: {self._log_tail()}") from exc

    def stop(self) -> None:
        if self._proc is not None:
            stop_process(self._proc)
            self._proc = None

    def restart(self) -> None:
        """Stop and start again on the same port and data (a broker restart)."""
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def _log_tail(self) -> str:
        try:
            return (self._dir / "redis.log").read_text()[-2000:]
        except OSError:
            return "(no log)"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.cleanup()
