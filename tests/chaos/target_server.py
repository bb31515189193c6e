"""A small local HTTP server for the `http` target: it runs the damage handler and, on top,
answers some requests with 503 (an invoke error: retried without using up retries) and
some with a body that is not JSON (a malformed response).

Both are decided by a hash of the request body and how often that body was posted, so a
seed replays them. Runs in the test process; the handler's knobs are read from this
process's environment (set them with monkeypatch)."""

from __future__ import annotations

import json
import threading
import zlib
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.chaos.damage_handler import handler


class DamageTargetServer:
    def __init__(self, unavailable_per_mille: int, garbage_per_mille: int) -> None:
        self.unavailable_per_mille = unavailable_per_mille
        self.garbage_per_mille = garbage_per_mille
        self.calls: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._request_class())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/invoke"

    def __enter__(self) -> DamageTargetServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, body: bytes) -> tuple[int, bytes]:
        """(status, body) for one request."""
        digest = f"{zlib.crc32(body)}"
        with self.lock:
            self.calls[digest] += 1
            key = f"{digest}:{self.calls[digest]}".encode()
        if zlib.crc32(b"503:" + key) % 1000 < self.unavailable_per_mille:
            return 503, b"unavailable on purpose"
        if zlib.crc32(b"garbage:" + key) % 1000 < self.garbage_per_mille:
            return 200, b"<html>not json</html>"
        try:
            result: Any = handler(json.loads(body), None)
        except Exception as exc:  # a function error, Lambda's way
            return 200, json.dumps({"errorType": type(exc).__name__,
                                    "errorMessage": str(exc)}).encode()
        return 200, json.dumps(result).encode()

    def _request_class(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Request(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, answer = owner.answer(body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                if status == 200 and answer.startswith(b'{"errorType"'):
                    self.send_header("X-Amz-Function-Error", "Unhandled")
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        return Request
