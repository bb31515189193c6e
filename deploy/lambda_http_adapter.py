"""Serve an unmodified AWS Lambda Python handler over HTTP for esm's `http` target.

Copy this one file (standard library only, no esm needed) into the function's image or
virtualenv and run it where the handler imports:

    python lambda_http_adapter.py app.handler --listen 0.0.0.0:8080 --timeout-seconds 30

It answers as Lambda's Invoke does, so both esm targets read it the same way:

    POST <any path>  the body is the event; `handler(event, context)` runs with a
                     Lambda-style context (aws_request_id from the `X-Amz-Request-Id` or
                     `Lambda-Runtime-Aws-Request-Id` header esm sends)
    returned         200, the result as JSON (`null` for None)
    raised           200, header `X-Amz-Function-Error: Unhandled`, body
                     {"errorMessage", "errorType", "stackTrace"} (Lambda's error document)
    timed out        200, header `X-Amz-Function-Error: Unhandled`, body
                     {"errorType": "Sandbox.Timedout", "errorMessage": "Task timed out …"}
    not JSON         400 (a function error for esm: the event never reached the handler)

One event at a time, like one Lambda execution environment: run several adapters (or
set the mapping's `scaling_config.maximum_concurrency`) for more. A handler past its
timeout is answered for and left running in its thread — Lambda would reset the whole
environment — so a handler that hangs for good needs the process restarted.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

Handler = Callable[[Any, Any], Any]


class LambdaContext:
    """The attributes and method Lambda's Python context offers handlers."""

    def __init__(self, request_id: str, function_name: str, timeout_seconds: float,
                 memory_limit_in_mb: int) -> None:
        self.aws_request_id = request_id
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = \
            f"arn:aws:lambda:{os.environ.get('AWS_REGION', 'us-east-1')}:000000000000:" \
            f"function:{function_name}"
        self.memory_limit_in_mb = memory_limit_in_mb
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "lambda-http-adapter"
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def load_handler(spec: str) -> Handler:
    """`module.function` (Lambda's handler format; `dir/module.function` also accepted)."""
    module_name, _, function_name = spec.replace("/", ".").rpartition(".")
    if not module_name or not function_name:
        raise SystemExit(f"lambda_http_adapter: handler {spec!r} is not module.function")
    handler = getattr(importlib.import_module(module_name), function_name, None)
    if not callable(handler):
        raise SystemExit(f"lambda_http_adapter: {function_name!r} in module {module_name!r} "
                         "is missing or not callable")
    return handler  # type: ignore[no-any-return]


def error_document(exc: BaseException) -> dict[str, Any]:
    """What the Lambda Python runtime reports for an exception."""
    return {"errorMessage": str(exc), "errorType": type(exc).__name__,
            "stackTrace": traceback.format_list(traceback.extract_tb(exc.__traceback__))}


def run_handler(handler: Handler, event: Any, context: LambdaContext,
                timeout_seconds: float) -> tuple[bool, Any]:
    """(failed, result or error document); the handler runs in its own thread so a call
    past the timeout can be answered for."""
    outcome: list[tuple[bool, Any]] = []

    def call() -> None:
        try:
            outcome.append((False, handler(event, context)))
        except Exception as exc:  # the function's error, reported like Lambda does
            outcome.append((True, error_document(exc)))

    worker = threading.Thread(target=call, name="handler", daemon=True)
    worker.start()
    worker.join(timeout_seconds)
    if not outcome:
        return True, {"errorType": "Sandbox.Timedout",
                      "errorMessage": f"Task timed out after {timeout_seconds:.2f} seconds"}
    return outcome[0]


class Invocations(BaseHTTPRequestHandler):
    """POST = one invocation. Set on the server: handler, function_name, timeout_seconds,
    memory_limit_in_mb."""

    server: AdapterServer
    protocol_version = "HTTP/1.1"  # keep-alive: esm pools its connections

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            event = json.loads(body) if body.strip() else {}
        except ValueError as exc:
            self._answer(400, {"errorType": "InvalidRequestContentException",
                               "errorMessage": f"event is not JSON: {exc}"}, failed=False)
            return
        request_id = self.headers.get("X-Amz-Request-Id") \
            or self.headers.get("Lambda-Runtime-Aws-Request-Id") or str(uuid.uuid4())
        server = self.server
        context = LambdaContext(request_id, server.function_name, server.timeout_seconds,
                                server.memory_limit_in_mb)
        failed, result = run_handler(server.handler, event, context, server.timeout_seconds)
        self._answer(200, result, failed)

    def _answer(self, status: int, document: Any, failed: bool) -> None:
        try:
            payload = json.dumps(document).encode()
        except (TypeError, ValueError) as exc:  # Lambda: Runtime.MarshalError
            failed, payload = True, json.dumps({
                "errorType": "Runtime.MarshalError",
                "errorMessage": f"Unable to marshal response: {exc}"}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if failed:
            self.send_header("X-Amz-Function-Error", "Unhandled")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        sys.stderr.write(f"lambda_http_adapter: {format % args}\n")


class AdapterServer(HTTPServer):
    """One handler behind one listening socket, one request at a time."""

    def __init__(self, address: tuple[str, int], handler: Handler, function_name: str,
                 timeout_seconds: float, memory_limit_in_mb: int) -> None:
        super().__init__(address, Invocations)
        self.handler = handler
        self.function_name = function_name
        self.timeout_seconds = timeout_seconds
        self.memory_limit_in_mb = memory_limit_in_mb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("handler", nargs="?", default=os.environ.get("_HANDLER"),
                        help="module.function (default: $_HANDLER)")
    parser.add_argument("--listen", default="127.0.0.1:8080", help="host:port")
    parser.add_argument("--timeout-seconds", type=float, default=float(
        os.environ.get("AWS_LAMBDA_FUNCTION_TIMEOUT", "3")), help="the function's timeout")
    parser.add_argument("--function-name", default=os.environ.get(
        "AWS_LAMBDA_FUNCTION_NAME", "function"))
    parser.add_argument("--memory-limit-in-mb", type=int, default=int(
        os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")))
    args = parser.parse_args(argv)
    if not args.handler:
        parser.error("a handler (module.function) is required, or set $_HANDLER")
    host, _, port = args.listen.rpartition(":")
    sys.path.insert(0, os.getcwd())  # Lambda imports the handler from the task root
    server = AdapterServer((host or "127.0.0.1", int(port)), load_handler(args.handler),
                           args.function_name, args.timeout_seconds, args.memory_limit_in_mb)
    print(f"lambda_http_adapter: {args.handler} on http://{args.listen}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
