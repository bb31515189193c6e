"""The daemon's HTTP server: /metrics (Prometheus), /healthz, /readyz, /mappings,
/mappings/NAME, and the admin API's POST /mappings/NAME/enable|disable (esm.ops.admin).

Listens on 127.0.0.1 by default (DESIGN §9). Runs in its own daemon thread; GET handlers
only read snapshots, so a slow scrape never touches a mapping's threads.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from esm.ops.admin import handle_post, is_loopback, json_response

log = logging.getLogger(__name__)


class StatusProvider(Protocol):
    """What the server asks the daemon (implemented by esm.runtime.daemon.Daemon)."""

    registry: CollectorRegistry

    def mapping_snapshots(self) -> list[dict[str, Any]]: ...

    def healthy(self) -> tuple[bool, str]: ...

    def ready(self) -> tuple[bool, str]: ...

    def auth_token(self) -> str | None: ...

    def request_enabled(self, name: str, enabled: bool) -> dict[str, Any]: ...


def parse_listen(listen: str) -> tuple[str, int]:
    """'host:port' or '[v6]:port' → (host, port); ValueError naming the value otherwise."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"server.listen must be HOST:PORT, got {listen!r}")
    return host.strip("[]"), int(port)


class AdminServer:
    """Serves the endpoints until `close()`."""

    def __init__(self, listen: str, provider: StatusProvider) -> None:
        host, port = parse_listen(listen)
        handler = _handler_class(provider, is_loopback(host))
        self._httpd = ThreadingHTTPServer((host, port), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="esm-http",
                                        daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._httpd.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self._thread.start()
        log.info("serving /metrics /healthz /readyz /mappings on %s:%d", *self.address)

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def _handler_class(provider: StatusProvider, loopback: bool) -> type[BaseHTTPRequestHandler]:
    routes: dict[str, Callable[[], tuple[int, str, bytes]]] = {
        "/metrics": lambda: (200, CONTENT_TYPE_LATEST, generate_latest(provider.registry)),
        "/healthz": lambda: _probe(provider.healthy()),
        "/readyz": lambda: _probe(provider.ready()),
        "/mappings": lambda: _json(200, provider.mapping_snapshots()),
    }

    class Handler(BaseHTTPRequestHandler):
        server_version = "esm"

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            path = self.path.split("?", 1)[0].rstrip("/") or "/"
            route = routes.get(path)
            if route is not None:
                self._send(*route())
            elif path.startswith("/mappings/"):
                self._send(*_one_mapping(provider, path.removeprefix("/mappings/")))
            else:
                self._send(*_json(404, {"error": f"no such endpoint: {path}"}))

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            path = self.path.split("?", 1)[0].rstrip("/") or "/"
            length = int(self.headers.get("Content-Length") or 0)
            if 0 < length <= 65536:
                self.rfile.read(length)  # no body is used; read it so the connection stays sane
            self._send(*handle_post(path, self.headers.get("Authorization"), loopback=loopback,
                                    token=provider.auth_token(),
                                    request_enabled=provider.request_enabled))

        def _send(self, code: int, content_type: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            log.debug("http %s", format % args)

    return Handler


_json = json_response


def _probe(result: tuple[bool, str]) -> tuple[int, str, bytes]:
    ok, detail = result
    return _json(200 if ok else 503, {"status": "ok" if ok else "unavailable", "detail": detail})


def _one_mapping(provider: StatusProvider, name: str) -> tuple[int, str, bytes]:
    for snapshot in provider.mapping_snapshots():
        if snapshot["name"] == name:
            return _json(200, snapshot)
    return _json(404, {"error": f"no mapping named {name!r}"})
