"""`esm run` protecting a real HTTP target (tests/servers/http_server.py): the daemon is a
subprocess, the target a real server in this process that records when each request came.

- a 429 with `Retry-After: 2` makes the lane wait at least 2 s before it tries again,
  although the mapping's own backoff would retry after 0.1 s;
- `rate_limit: {invocations_per_second: 20}` holds the measured rate within 10% over 10 s,
  for one mapping and for two mappings sharing a `rate_limit_group`, while the reader's
  buffer stays at its bound (lanes paused at the source);
- every request carries an `Idempotency-Key`, the same on the retry of the same batch;
- the `lambda` target, on a Lambda-compatible endpoint served by the same harness, waits
  out a TooManyRequestsException's Retry-After and sends the key in ClientContext.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.e2e_support import DaemonProcess, daemon_env, wait_until, write_config
from tests.servers.http_server import HttpServer, Reply, Request, http_server

pytestmark = pytest.mark.integration

OK = Reply(body=b"{}")


def memory_mapping(name: str, url: str, **keys: Any) -> dict[str, Any]:
    mapping: dict[str, Any] = {
        "name": name,
        "source": {"type": "memory", "lanes": 4, "generate": 3},
        "batch_size": 1,
        "retry_backoff": {"initial_seconds": 0.1, "maximum_seconds": 30, "jitter": False},
        "target": {"type": "http", "url": url, "timeout_seconds": 5},
    }
    mapping.update(keys)
    return mapping


def records_of(request: Request) -> list[int]:
    return [json.loads(r["body"])["id"] for r in json.loads(request.body)["Records"]]


def first_throttled(throttle: Reply, ok: Reply) -> Callable[[str, dict[str, str], bytes], Reply]:
    """A responder that answers each distinct body with `throttle` once, then with `ok`."""
    seen: set[bytes] = set()
    lock = threading.Lock()

    def reply(path: str, headers: dict[str, str], body: bytes) -> Reply:
        with lock:
            first = body not in seen
            seen.add(body)
        return throttle if first else ok

    return reply


def requests_by_body(tmp_path: Path, mapping: dict[str, Any], server: HttpServer,
                     count: int) -> dict[bytes, list[Request]]:
    """Run the daemon until the server got `count` requests; them, grouped by body."""
    config = write_config(tmp_path, [mapping])
    with DaemonProcess(config, daemon_env(tmp_path / "journal"), tmp_path / "esm.log") as d:
        d.wait_ready()
        wait_until(lambda: len(server.received()) >= count, 30,
                   lambda: f"requests: {len(server.received())}\n{d.log_tail()}")
    by_body: dict[bytes, list[Request]] = {}
    for request in server.received():
        by_body.setdefault(request.body, []).append(request)
    return by_body


@pytest.fixture
def throttling() -> Iterator[HttpServer]:
    """429 with Retry-After: 2 on the first request for each record, then 200."""
    with http_server(first_throttled(Reply(429, b"slow down", {"Retry-After": "2"}),
                                     OK)) as server:
        yield server


def test_a_429_with_retry_after_holds_the_lane_at_least_that_long(
        tmp_path: Path, throttling: HttpServer) -> None:
    # Given a mapping whose backoff would retry after 0.1 s
    # When the target answers each record's first request with 429, Retry-After: 2
    by_body = requests_by_body(tmp_path, memory_mapping("throttled", throttling.url("/invoke")),
                               throttling, 6)
    # Then each record's retry came at least 2 s after its throttled request
    by_record = {records_of(reqs[0])[0]: reqs for reqs in by_body.values()}
    assert sorted(by_record) == [0, 1, 2]
    gaps = {n: round(reqs[1].at - reqs[0].at, 3) for n, reqs in by_record.items()}
    print(f"\nRetry-After: 2 -> gaps between a record's 429 and its retry: {gaps}")
    assert all(2.0 <= gap < 4.0 for gap in gaps.values()), gaps
    # And the retry is the same invocation to the target: the same Idempotency-Key
    for reqs in by_record.values():
        keys = {r.headers["Idempotency-Key"] for r in reqs}
        assert len(keys) == 1 and len(next(iter(keys))) == 64
    assert len({reqs[0].headers["Idempotency-Key"] for reqs in by_record.values()}) == 3


@pytest.fixture
def fast_target() -> Iterator[HttpServer]:
    with http_server(lambda path, headers, body: OK) as server:
        yield server


def measured_rate(requests: list[Request], start: float, seconds: float) -> float:
    return sum(1 for r in requests if start <= r.at < start + seconds) / seconds


def test_rate_limit_holds_invocations_per_second_alone_and_shared_by_a_group(
        tmp_path: Path, fast_target: HttpServer) -> None:
    # Given a mapping limited to 20 invocations/s, and two mappings sharing 20/s in a group,
    # each with plenty of records, 4 lanes and a target that answers at once
    limit = {"invocations_per_second": 20, "burst": 1}
    source = {"type": "memory", "lanes": 4, "generate": 5000}
    mappings = [
        memory_mapping("solo", fast_target.url("/solo"), source=source, rate_limit=limit),
        memory_mapping("a", fast_target.url("/group"), source=source, rate_limit=limit,
                       rate_limit_group="billing"),
        memory_mapping("b", fast_target.url("/group"), source=source,
                       rate_limit_group="billing"),
    ]
    config = write_config(tmp_path, mappings)
    with DaemonProcess(config, daemon_env(tmp_path / "journal"), tmp_path / "esm.log") as d:
        d.wait_ready()
        wait_until(lambda: len(fast_target.received()) > 0, 30, d.log_tail)
        start = fast_target.received()[0].at + 1.0  # past the start-up burst
        wait_until(lambda: fast_target.received()[-1].at >= start + 10.5, 30, d.log_tail)
        metrics = d.metrics()
        solo_status = next(m for m in d.mappings() if m["name"] == "solo")
    requests = fast_target.received()
    solo = measured_rate([r for r in requests if r.path == "/solo"], start, 10)
    group = [r for r in requests if r.path == "/group"]
    shared = measured_rate(group, start, 10)
    print(f"\nmeasured over 10 s: solo {solo:.1f}/s, group of two {shared:.1f}/s")
    # Then each limit held within 10% of 20/s
    assert 18.0 <= solo <= 22.0, solo
    assert 18.0 <= shared <= 22.0, shared
    # And both mappings of the group got turns
    names = {json.loads(r.body)["Records"][0]["eventSourceARN"] for r in group}
    assert len(names) == 2, names
    assert metrics["esm_rate_limit_wait_seconds_total{mapping=solo}"] > 1.0
    # And while lanes waited, the source was paused: the buffer stayed at its bound (1000
    # records, the reader's read-ahead floor) instead of taking in all 5000 records
    assert solo_status["bufferedRecords"] <= 1000 and solo_status["pausedLanes"] >= 1, \
        solo_status


@pytest.fixture
def throttling_lambda() -> Iterator[HttpServer]:
    """A Lambda-compatible endpoint (the Invoke API over real HTTP): each record's first
    Invoke is throttled with TooManyRequestsException and Retry-After: 2, then it returns."""
    throttled = json.dumps({"Type": "User", "message": "Rate exceeded",
                            "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded"})
    reply = first_throttled(
        Reply(429, throttled.encode(), {"x-amzn-ErrorType": "TooManyRequestsException",
                                        "Retry-After": "2"}),
        Reply(200, b"null", {"X-Amz-Executed-Version": "$LATEST"}))
    with http_server(reply) as server:
        yield server


def test_a_throttled_lambda_invoke_holds_the_lane_for_its_retry_after(
        tmp_path: Path, throttling_lambda: HttpServer) -> None:
    # Given a lambda target on a Lambda-compatible endpoint that throttles each first call
    target = {"type": "lambda", "function_name": "billing", "region": "us-east-1",
              "endpoint_url": throttling_lambda.url(""), "timeout_seconds": 5}
    mapping = memory_mapping("lambda-throttled", "unused", target=target)
    by_body = requests_by_body(tmp_path, mapping, throttling_lambda, 6)
    # Then each retry came at least 2 s after the throttle (the backoff alone: 0.1 s)
    gaps = sorted(round(reqs[1].at - reqs[0].at, 3) for reqs in by_body.values())
    print(f"\nlambda TooManyRequestsException, Retry-After: 2 -> gaps {gaps}")
    assert len(gaps) == 3 and all(2.0 <= gap < 4.0 for gap in gaps), gaps
    # And the Invoke carried the idempotency key in ClientContext, the same on the retry
    for reqs in by_body.values():
        contexts = {json.loads(base64.b64decode(r.headers["X-Amz-Client-Context"]))["custom"]
                    ["idempotency_key"] for r in reqs}
        assert len(contexts) == 1 and len(next(iter(contexts))) == 64
