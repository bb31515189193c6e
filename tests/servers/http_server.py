"""A real HTTP/1.1 server on 127.0.0.1 for target tests, run on a thread of the test
process (nothing to install): the `http` target talks to it over a real socket.

What it answers is a function of the request, `reply(path, headers, body) -> Reply`, set
when it starts and replaceable while it runs (a test takes the target down and brings it
back). It counts TCP connections (one handler instance serves one keep-alive connection)
and records every request with its arrival time, headers and body.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.servers.common import free_port


def ensure_installed() -> None:
    """Nothing to install: the server is the standard library's, run in the test process
    (`python -m tests.servers install` calls this for every harness)."""


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_seconds: float = 0.0


@dataclass(frozen=True)
class Request:
    at: float  # time.monotonic() on arrival
    path: str
    headers: dict[str, str]
    body: bytes


Responder = Callable[[str, dict[str, str], bytes], Reply]


class HttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, reply: Responder) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.reply = reply
        self.connections = 0
        self.log: list[Request] = []
        self.lock = threading.Lock()

    @property
    def requests(self) -> list[tuple[str, dict[str, str], bytes]]:
        """(path, headers, body) of every request so far, in arrival order."""
        with self.lock:
            return [(r.path, r.headers, r.body) for r in self.log]

    def received(self) -> list[Request]:
        with self.lock:
            return list(self.log)

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.server_port}{path}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client killed mid-connection (kill -9 tests) resets it: expected, not news.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse is observable
    disable_nagle_algorithm = True  # headers and body are two writes: avoid 40 ms stalls
    server: HttpServer

    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.connections += 1

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        headers = dict(self.headers.items())
        with self.server.lock:
            self.server.log.append(Request(time.monotonic(), self.path, headers, body))
        reply = self.server.reply(self.path, headers, body)
        time.sleep(reply.delay_seconds)
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply.body)))
        try:
            self.end_headers()
            self.wfile.write(reply.body)
        except BrokenPipeError:
            pass  # the client gave up (timeout tests); nothing to answer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet test output
        pass


@contextmanager
def http_server(reply: Responder) -> Iterator[HttpServer]:
    """A running server on a free port; shut down on exit."""
    server = HttpServer(free_port(), reply)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
