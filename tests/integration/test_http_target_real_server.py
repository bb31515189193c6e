"""connectors.http.target against a real HTTP/1.1 server on 127.0.0.1 (started per module,
tests/servers/http_server.py).

The server routes on the request path, so each test points a target at the behaviour it
needs. It counts TCP connections and records every request's headers and body.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import pytest

from connectors.http.target import HttpSettings, HttpTarget
from esm.clock import FakeClock
from esm.errors import InvokeError
from esm.interfaces import ConnectorContext
from esm.records import Event, FunctionFailed, Returned
from tests.servers.common import free_port
from tests.servers.http_server import HttpServer as Server
from tests.servers.http_server import Reply, http_server

pytestmark = pytest.mark.integration

LAMBDA_ERROR = {"errorType": "KeyError", "errorMessage": "'amount'",
                "stackTrace": ['  File "/var/task/app.py", line 3, in handler\n']}


ROUTES: dict[str, Callable[[bytes], Reply]] = {
    "/echo": lambda body: Reply(body=body),
    "/partial": lambda body: Reply(body=b'{"batchItemFailures": [{"itemIdentifier": "m-2"}]}'),
    "/empty": lambda body: Reply(body=b""),
    "/text": lambda body: Reply(body=b"done, thanks"),
    "/function-error": lambda body: Reply(body=json.dumps(LAMBDA_ERROR).encode(),
                                          headers={"X-Amz-Function-Error": "Unhandled"}),
    "/function-error-plain": lambda body: Reply(body=b"it broke",
                                                headers={"X-Amz-Function-Error": "Unhandled"}),
    "/status/429": lambda body: Reply(429, b"slow down"),
    "/status/502": lambda body: Reply(502, b"bad gateway"),
    "/status/503": lambda body: Reply(503, b"unavailable"),
    "/status/504": lambda body: Reply(504, b"gateway timeout"),
    "/status/500": lambda body: Reply(500, b"Traceback: ZeroDivisionError"),
    "/status/404": lambda body: Reply(404, b"no such route"),
    "/status/302": lambda body: Reply(302, b"", {"Location": "/echo"}),
    "/slow": lambda body: Reply(body=b"{}", delay_seconds=2.0),
    "/retry-after/429": lambda body: Reply(429, b"slow down", {"Retry-After": "2"}),
    "/retry-after/503": lambda body: Reply(503, b"maintenance", {"Retry-After": "120"}),
    "/retry-after/date": lambda body: Reply(503, b"maintenance", {"Retry-After": format_datetime(
        datetime.fromtimestamp(FakeClock().now() + 30, tz=UTC), usegmt=True)}),
    "/retry-after/502": lambda body: Reply(502, b"bad gateway", {"Retry-After": "9"}),
}


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with http_server(lambda path, headers, body: ROUTES[path](body)) as srv:
        yield srv


@pytest.fixture
def make_target(server: Server) -> Iterator[Callable[..., HttpTarget]]:
    built: list[HttpTarget] = []

    def make(path: str, **settings: Any) -> HttpTarget:
        url = f"http://127.0.0.1:{server.server_port}{path}"
        target = HttpTarget(HttpSettings(url=url, **settings),
                            ConnectorContext("orders", threading.Event(), FakeClock()))
        built.append(target)
        return target

    yield make
    for target in built:
        target.close()


def event(request_id: str = "req-1") -> Event:
    doc = {"Records": [{"messageId": "m-1"}, {"messageId": "m-2"}]}
    return Event(document=doc, body=json.dumps(doc).encode(), request_id=request_id)


# ---- 2xx ------------------------------------------------------------------------------------


def test_posts_the_event_as_json_with_request_id_headers(make_target: Any, server: Server) -> None:
    # Given a target with an Authorization header
    target = make_target("/echo", headers={"Authorization": "Bearer s3cret"})
    # When it invokes
    result = target.invoke(event("req-77"), 5.0)
    # Then the server got the exact body and Lambda's request-id headers
    path, headers, body = server.requests[-1]
    assert (path, body) == ("/echo", event().body)
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Amz-Request-Id"] == "req-77"
    assert headers["Lambda-Runtime-Aws-Request-Id"] == "req-77"
    assert headers["Authorization"] == "Bearer s3cret"
    # And the JSON response came back parsed
    assert result == Returned(payload=json.loads(event().body))


def test_partial_batch_response_is_returned_parsed(make_target: Any) -> None:
    # Given a server answering with batchItemFailures / When invoked
    result = make_target("/partial").invoke(event(), 5.0)
    # Then the payload carries them for esm.failures.responses to interpret
    assert result == Returned(payload={"batchItemFailures": [{"itemIdentifier": "m-2"}]})


def test_empty_body_is_returned_as_none(make_target: Any) -> None:
    assert make_target("/empty").invoke(event(), 5.0) == Returned(payload=None)


def test_non_json_body_is_returned_raw_and_marked_invalid(make_target: Any) -> None:
    # Given a server answering plain text / When invoked
    result = make_target("/text").invoke(event(), 5.0)
    # Then the raw body is kept and flagged as not JSON
    assert result == Returned(payload=None, raw=b"done, thanks", valid_json=False)


# ---- function errors --------------------------------------------------------------------------


def test_function_error_header_reads_lambdas_error_document(make_target: Any) -> None:
    # Given a 200 with X-Amz-Function-Error and Lambda's error JSON / When invoked
    result = make_target("/function-error").invoke(event(), 5.0)
    # Then it is a function error with type, message and stack
    assert result == FunctionFailed("KeyError", "'amount'", tuple(LAMBDA_ERROR["stackTrace"]))


def test_function_error_header_with_plain_body_uses_header_as_type(make_target: Any) -> None:
    result = make_target("/function-error-plain").invoke(event(), 5.0)
    assert result == FunctionFailed("Unhandled", "it broke")


@pytest.mark.parametrize(("path", "status"), [("/status/500", 500), ("/status/404", 404),
                                              ("/status/302", 302)])
def test_other_statuses_are_function_errors(make_target: Any, path: str, status: int) -> None:
    # Given a server answering a non-retriable status / When invoked
    result = make_target(path).invoke(event(), 5.0)
    # Then it is a function error named after the status
    assert isinstance(result, FunctionFailed)
    assert result.error_type == f"HttpError{status}"
    assert result.error_message.startswith(f"HTTP {status}")


def test_500_body_excerpt_is_in_the_message(make_target: Any) -> None:
    result = make_target("/status/500").invoke(event(), 5.0)
    assert isinstance(result, FunctionFailed)
    assert "ZeroDivisionError" in result.error_message


# ---- invoke errors ----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_throttle_and_gateway_statuses_raise_invoke_error(make_target: Any, status: int) -> None:
    # Given a server answering a retriable status
    target = make_target(f"/status/{status}", headers={"X-Api-Key": "k3y-value"})
    # When invoked / Then InvokeError names the URL and status, never header values
    with pytest.raises(InvokeError) as err:
        target.invoke(event(), 5.0)
    message = str(err.value)
    assert f"HTTP {status}" in message
    assert f"/status/{status}" in message
    assert "k3y-value" not in message


def test_connection_refused_raises_invoke_error() -> None:
    # Given a URL where nothing listens
    port = free_port()
    target = HttpTarget(HttpSettings(url=f"http://user:pw@127.0.0.1:{port}/invoke?token=t0k"),
                        ConnectorContext("orders", threading.Event(), FakeClock()))
    # When invoked
    with pytest.raises(InvokeError) as err:
        target.invoke(event(), 2.0)
    # Then the error names the URL without its credentials or query
    message = str(err.value)
    assert f"POST http://127.0.0.1:{port}/invoke" in message
    assert "refused" in message.lower()
    assert "pw" not in message and "t0k" not in message
    target.close()


def test_slow_server_raises_timeout_invoke_error(make_target: Any) -> None:
    # Given a server that answers after 2 s
    target = make_target("/slow")
    # When invoked with a 0.3 s timeout / Then InvokeError says it timed out
    with pytest.raises(InvokeError, match=r"no response within 0\.30s"):
        target.invoke(event(), 0.3)


def test_target_recovers_after_a_timeout(make_target: Any) -> None:
    # Given a target whose connection timed out once
    slow = make_target("/slow", max_connections=1)
    with pytest.raises(InvokeError):
        slow.invoke(event(), 0.2)
    # When invoked again with enough time / Then the pool hands out a working connection
    assert slow.invoke(event(), 5.0) == Returned(payload={})


# ---- connection pooling --------------------------------------------------------------------


def test_sequential_invocations_reuse_one_connection(make_target: Any, server: Server) -> None:
    # Given a fresh target
    target = make_target("/echo")
    before = server.connections
    # When it invokes 20 times in a row, including function errors and empty answers
    for i in range(20):
        target.invoke(event(f"r{i}"), 5.0)
    make_target("/status/500")  # another target must not affect this one's pool
    # Then the server saw a single new connection
    assert server.connections - before == 1


def test_concurrent_invocations_use_at_most_max_connections(make_target: Any,
                                                            server: Server) -> None:
    # Given a target capped at 2 connections and 8 threads invoking 5 times each
    target = make_target("/echo", max_connections=2)
    before = server.connections
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(5):
                assert isinstance(target.invoke(event(), 10.0), Returned)
        except BaseException as exc:  # noqa: BLE001 - surfaced by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    # When they all run
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Then every call succeeded over no more than 2 connections
    assert errors == []
    assert 1 <= server.connections - before <= 2


def test_invocation_throughput_figures(make_target: Any) -> None:
    # Given a pooled target / When it invokes 300 times (a printed figure, not an assert)
    target = make_target("/echo")
    start = time.perf_counter()
    for _ in range(300):
        target.invoke(event(), 5.0)
    elapsed = time.perf_counter() - start
    print(f"\nhttp target: {300 / elapsed:.0f} invocations/s sequential over keep-alive")
    assert elapsed > 0


# ---- Retry-After and Idempotency-Key ----------------------------------------------------------


@pytest.mark.parametrize(("path", "seconds"), [
    ("/retry-after/429", 2.0), ("/retry-after/503", 120.0), ("/retry-after/date", 30.0),
    ("/retry-after/502", None),  # the hint is honoured on 429 and 503 only
])
def test_retry_after_rides_on_the_invoke_error(make_target: Any, path: str,
                                               seconds: float | None) -> None:
    with pytest.raises(InvokeError) as raised:
        make_target(path).invoke(event(), 5.0)
    assert raised.value.retry_after_seconds == seconds


def test_sends_the_events_idempotency_key(make_target: Any, server: Server) -> None:
    doc = {"Records": [{"messageId": "m-1"}]}
    keyed = Event(document=doc, body=json.dumps(doc).encode(), request_id="r",
                  idempotency_key="f" * 64)
    make_target("/echo").invoke(keyed, 5.0)
    assert server.requests[-1][1]["Idempotency-Key"] == "f" * 64
    make_target("/echo").invoke(event(), 5.0)  # no key computed: no header
    assert "Idempotency-Key" not in server.requests[-1][1]
