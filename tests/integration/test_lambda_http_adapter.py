"""The README recipe for the `http` target: an unmodified Lambda handler served by
`deploy/lambda_http_adapter.py`, read by the real targets and driven end to end by the
daemon from Redis Streams."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from connectors.aws.lambda_target import LambdaSettings, LambdaTarget
from connectors.http.target import HttpSettings, HttpTarget
from esm.clock import SystemClock
from esm.interfaces import ConnectorContext
from esm.records import Event, FunctionFailed, Returned
from tests.integration import lambda_e2e_support as support
from tests.servers.common import free_port, stop_process, wait_for_port
from tests.servers.redis_server import RedisServer, redis_server  # noqa: F401

pytestmark = pytest.mark.integration
REPO_ROOT = Path(__file__).resolve().parents[2]
ADAPTER = REPO_ROOT / "deploy" / "lambda_http_adapter.py"


class Adapter:
    """`python deploy/lambda_http_adapter.py HANDLER` on a free port, from the repo root
    (the handler's task root); the function journals to `journal`."""

    def __init__(self, handler: str, tmp_path: Path, timeout_seconds: float) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/invoke"
        self.journal = tmp_path / f"adapter-{uuid.uuid4().hex[:6]}.jsonl"
        self.log = tmp_path / "adapter.log"
        env = {**os.environ, "ESM_E2E_JOURNAL": str(self.journal)}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(ADAPTER), f"{support.FUNCTIONS}.{handler}",
                 "--listen", f"127.0.0.1:{self.port}", "--timeout-seconds", str(timeout_seconds)],
                cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(self.port, 20, self.proc)

    def outcomes(self, outcome: str) -> list[str]:
        return support.journal_outcomes(self.journal, outcome)


StartAdapter = Callable[..., Adapter]


@pytest.fixture
def adapter(tmp_path: Path) -> Iterator[StartAdapter]:
    started: list[Adapter] = []

    def start(handler: str, timeout_seconds: float = support.TIMEOUT) -> Adapter:
        started.append(Adapter(handler, tmp_path, timeout_seconds))
        return started[-1]

    yield start
    for one in started:
        stop_process(one.proc)


def context() -> ConnectorContext:
    return ConnectorContext("adapter", threading.Event(), SystemClock())


def http_invoke(url: str, document: dict[str, Any]) -> Any:
    target = HttpTarget(HttpSettings(url=url, timeout_seconds=10), context())
    try:
        return target.invoke(Event(document=document, body=json.dumps(document).encode(),
                                   request_id="req-1"), 10)
    finally:
        target.close()


SQS_LIKE = {"Records": [{"messageId": "m-0", "body": "fine"},
                        {"messageId": "m-1", "body": "please fail"}]}


def test_exception_answers_with_the_function_error_header(adapter: StartAdapter) -> None:
    # Given a handler that raises, behind the adapter
    served = adapter("raise_always")
    # When the http target invokes it / Then it is a function error with Lambda's fields
    result = http_invoke(served.url, SQS_LIKE)
    assert isinstance(result, FunctionFailed), result
    assert (result.error_type, result.error_message) == \
        ("ValueError", "cannot process this batch")
    assert any("raise_always" in line for line in result.stack_trace)


def test_result_and_powertools_partial_response_pass_through(adapter: StartAdapter) -> None:
    assert http_invoke(adapter("ok").url, SQS_LIKE) == \
        Returned(payload={"received": 2, "function": "function"})
    assert http_invoke(adapter("sqs_batch").url, SQS_LIKE) == \
        Returned(payload={"batchItemFailures": [{"itemIdentifier": "m-1"}]})


def test_timeout_is_a_function_error(adapter: StartAdapter) -> None:
    result = http_invoke(adapter("sleep_past_timeout", timeout_seconds=1).url, {})
    assert result == FunctionFailed("Sandbox.Timedout", "Task timed out after 1.00 seconds")


def test_lambda_target_reads_the_adapter_with_aws_header_contract(
        adapter: StartAdapter, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the adapter answering Lambda's Invoke path, and a lambda target trusting the
    # header alone (AWS's contract)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    served = adapter("raise_always")
    target = LambdaTarget(LambdaSettings(
        function_name="function", region="us-east-1", timeout_seconds=5,
        endpoint_url=f"http://127.0.0.1:{served.port}", function_error_detection="header"),
        context())
    # When invoked / Then the header alone makes it a function error
    try:
        result = target.invoke(Event(document={}, body=b"{}", request_id="r"), 5)
    finally:
        target.close()
    assert isinstance(result, FunctionFailed) and result.error_type == "ValueError"


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:  # noqa: F811
    c = redis.Redis.from_url(redis_server.url, decode_responses=True)
    yield c
    c.close()


def http_target(served: Adapter) -> dict[str, Any]:
    return {"type": "http", "url": served.url, "timeout_seconds": support.TIMEOUT}


def test_daemon_to_adapter_dead_letters_failed_records_and_acks_the_rest(
        tmp_path: Path, redis_server: RedisServer, client: redis.Redis,  # noqa: F811
        adapter: StartAdapter) -> None:
    # Given 20 entries, every 6th asking the Powertools handler to fail it
    stream = f"adapter-{uuid.uuid4().hex[:8]}"
    bodies = {client.xadd(stream, {"body": "please fail" if n % 6 == 2 else f"ok {n}"}): n
              for n in range(20)}
    bad = {entry for entry, n in bodies.items() if n % 6 == 2}
    served = adapter("sqs_batch")
    mapping = support.redis_mapping(redis_server.url, stream, http_target(served), tmp_path,
                            name="adapter-redis")
    failures = tmp_path / "failures.jsonl"
    # When the daemon runs until the group has nothing pending
    def done() -> bool:
        return set(support.noticed_ids(failures)) >= bad \
            and support.pending_and_lag(client, stream) == (0, 0)
    support.run_until(tmp_path, mapping, done,
                      lambda: f"noticed {support.noticed_ids(failures)}, want {sorted(bad)}")
    # Then the good entries were processed once, the bad ones dead-lettered after 2 tries
    assert sorted(served.outcomes("ok")) == sorted(set(bodies) - bad)
    assert Counter(served.outcomes("fail")) == {entry: 2 for entry in bad}
    assert sorted(support.noticed_ids(failures)) == sorted(bad)


def test_daemon_to_adapter_with_a_raising_handler_never_acks_silently(
        tmp_path: Path, redis_server: RedisServer, client: redis.Redis,  # noqa: F811
        adapter: StartAdapter) -> None:
    stream = f"adapter-{uuid.uuid4().hex[:8]}"
    entries = [client.xadd(stream, {"body": f"order {n}"}) for n in range(8)]
    mapping = support.redis_mapping(redis_server.url, stream, http_target(adapter("raise_always")),
                            tmp_path, name="adapter-redis")
    failures = tmp_path / "failures.jsonl"
    def done() -> bool:
        return sorted(support.noticed_ids(failures)) == sorted(entries) \
            and support.pending_and_lag(client, stream) == (0, 0)
    support.run_until(tmp_path, mapping, done,
                      lambda: f"noticed {len(support.noticed_ids(failures))} of {len(entries)}")
    notices = support.read_notices(failures)
    assert {n["esm"]["errorType"] for n in notices} == {"ValueError"}
    assert {n["responseContext"]["functionError"] for n in notices} == {"Unhandled"}
