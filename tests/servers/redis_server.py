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
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers.common import ServerProcess, ensure_debian_package, free_port

PACKAGE = "redis-server"


def redis_binary() -> str | None:
    return shutil.which("redis-server")


def ensure_installed() -> None:
    """Install Debian's redis-server if it is missing (idempotent)."""
    ensure_debian_package(PACKAGE, "redis-server")


class RedisServer(ServerProcess):
    """One redis-server subprocess; `url` is redis://127.0.0.1:<port>/0. `appendfsync` is
    "always" so a restart keeps every acknowledged write; benchmarks pass "everysec"."""

    name = "redis-server"

    def __init__(self, appendfsync: str = "always") -> None:
        super().__init__()
        self.port = free_port()
        self.appendfsync = appendfsync
        self._dir = Path(tempfile.mkdtemp(prefix="esm-redis-"))

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
                   "--save", "", "--protected-mode", "no", "--daemonize", "no"]
        self.launch(command, self._dir / "redis.log", startup_seconds=20)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.cleanup()
