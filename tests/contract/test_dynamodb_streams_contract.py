"""Contract: the DynamoDB Streams source, run by the real core (esm.runtime.daemon.Daemon from a
YAML config), against moto's server: order per shard under retries, checkpoint resume
after a restart, a poison record bisected to the destination, max record age drops with a
notice. The handler lives in this module (`python` target, `module:function`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.file.destination import read_notices
from esm.clock import SystemClock
from esm.config.loading import load_config
from esm.runtime.daemon import Daemon
from tests.servers.moto_server import MotoServer, moto_server  # noqa: F401

HANDLER = f"{__name__}:handler"


class Calls:
    """What the handler saw and how it should behave; reset per test."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[dict[str, Any]] = []
        self.poison: set[str] = set()
        self.fail_first: dict[str, int] = {}


CALLS = Calls()


def handler(event: dict[str, Any], context: Any) -> Any:
    ids = [r["dynamodb"]["Keys"]["id"]["S"] for r in event["Records"]]
    with CALLS.lock:
        CALLS.events.append(event)
        for item in ids:
            if item in CALLS.poison:
                raise ValueError(f"poison {item}")
            if CALLS.fail_first.get(item, 0) > 0:
                CALLS.fail_first[item] -= 1
                raise RuntimeError(f"transient failure on {item}")
    return None


def invoked_ids() -> list[list[str]]:
    with CALLS.lock:
        return [[r["dynamodb"]["Keys"]["id"]["S"] for r in e["Records"]] for e in CALLS.events]


@pytest.fixture(autouse=True)
def fresh_calls() -> Iterator[None]:
    global CALLS
    CALLS = Calls()
    yield


@pytest.fixture
def table(moto_server: MotoServer) -> tuple[str, str]:  # noqa: F811
    return moto_server.create_table_with_stream()


def put(server: MotoServer, table: str, *ids: str) -> None:
    client = server.client("dynamodb")
    for item in ids:
        client.put_item(TableName=table, Item={"id": {"S": item}, "n": {"N": "1"}})


def write_config(tmp_path: Path, server: MotoServer, stream_arn: str, **mapping: Any) -> Path:
    source = {"type": "dynamodb_streams", "stream_arn": stream_arn,
              "starting_position": "TRIM_HORIZON", "endpoint_url": server.endpoint_url,
              "region": "us-east-1", "access_key_id": "test", "secret_access_key": "test",
              "checkpoint": {"type": "sqlite", "path": str(tmp_path / "cp.sqlite")}}
    source.update(mapping.pop("source", {}))
    body = {"name": "ddb", "source": source, "batch_size": 10,
            "maximum_batching_window_in_seconds": 1,
            "target": {"type": "python", "handler": HANDLER, "timeout_seconds": 5},
            "retry_backoff": {"initial_seconds": 0.05, "maximum_seconds": 0.1},
            **mapping}
    import yaml

    path = tmp_path / "esm.yaml"
    path.write_text(yaml.safe_dump({"mappings": [body], "server": {"enabled": False}}))
    return path


def run_daemon(config_path: Path, clock: Any = None, timeout: float = 30) -> None:
    daemon = Daemon(load_config([str(config_path)], {}), clock=clock)
    daemon.start()
    try:
        assert daemon.run_until_idle(timeout, settle_seconds=1.0), "daemon never became idle"
    finally:
        assert daemon.shutdown()


def test_delivers_every_change_once_in_order_with_the_aws_event_shape(
        moto_server: MotoServer, table: tuple[str, str], tmp_path: Path):  # noqa: F811
    # Given 25 item writes on a table with a stream
    name, arn = table
    ids = [f"item-{i:02d}" for i in range(25)]
    put(moto_server, name, *ids)
    # When the daemon reads the stream
    run_daemon(write_config(tmp_path, moto_server, arn))
    # Then every change arrives once, in stream order, shaped like AWS's event (§2.3)
    assert [i for batch in invoked_ids() for i in batch] == ids
    record = CALLS.events[0]["Records"][0]
    assert record["eventSource"] == "aws:dynamodb" and record["eventName"] == "INSERT"
    assert record["eventSourceARN"] == arn and record["awsRegion"] == "us-east-1"
    assert isinstance(record["dynamodb"]["ApproximateCreationDateTime"], float)
    assert record["dynamodb"]["NewImage"] == {"id": {"S": "item-00"}, "n": {"N": "1"}}
    sequences = [int(r["dynamodb"]["SequenceNumber"]) for e in CALLS.events for r in e["Records"]]
    assert sequences == sorted(sequences)


def test_resumes_after_a_restart_from_the_checkpoint(
        moto_server: MotoServer, table: tuple[str, str], tmp_path: Path):  # noqa: F811
    # Given a daemon that processed five changes and stopped
    name, arn = table
    config = write_config(tmp_path, moto_server, arn)
    put(moto_server, name, *[f"a{i}" for i in range(5)])
    run_daemon(config)
    # When five more changes are written and a new daemon starts on the same checkpoints
    put(moto_server, name, *[f"b{i}" for i in range(5)])
    run_daemon(config)
    # Then the second run sees only the new changes
    flat = [i for batch in invoked_ids() for i in batch]
    assert flat == [f"a{i}" for i in range(5)] + [f"b{i}" for i in range(5)]


def test_keeps_order_per_shard_while_retrying_a_failed_batch(
        moto_server: MotoServer, table: tuple[str, str], tmp_path: Path):  # noqa: F811
    # Given a handler that fails twice on the fourth change
    name, arn = table
    ids = [f"o{i}" for i in range(8)]
    CALLS.fail_first["o3"] = 2
    put(moto_server, name, *ids)
    # When the daemon runs with batch size 2
    run_daemon(write_config(tmp_path, moto_server, arn, batch_size=2))
    # Then the failed batch is retried in place and nothing after it is invoked before it
    calls = invoked_ids()
    assert calls.count(["o2", "o3"]) == 3
    first_success = [c for c in calls if c != ["o2", "o3"]]
    assert [i for c in first_success for i in c] == ["o0", "o1", "o4", "o5", "o6", "o7"]
    assert calls.index(["o4", "o5"]) > max(i for i, c in enumerate(calls) if c == ["o2", "o3"])


def test_bisects_a_poison_record_to_the_on_failure_destination(
        moto_server: MotoServer, table: tuple[str, str], tmp_path: Path):  # noqa: F811
    # Given a poison change among eight, bisection on, one retry, a file destination
    name, arn = table
    ids = [f"p{i}" for i in range(8)]
    CALLS.poison.add("p5")
    put(moto_server, name, *ids)
    notices = tmp_path / "dlq.jsonl"
    config = write_config(
        tmp_path, moto_server, arn, batch_size=8, bisect_batch_on_function_error=True,
        maximum_retry_attempts=1,
        destination_config={"on_failure": {"type": "file", "path": str(notices)}})
    # When the daemon runs
    run_daemon(config)
    # Then only the poison record is dead-lettered, with DDBStreamBatchInfo (§4.5)
    [notice] = list(read_notices(notices))
    info = notice["DDBStreamBatchInfo"]
    assert info["batchSize"] == 1 and info["streamArn"] == arn
    assert info["startSequenceNumber"] == info["endSequenceNumber"]
    assert info["approximateArrivalOfFirstRecord"].endswith("Z")
    assert "." not in info["approximateArrivalOfFirstRecord"]
    assert notice["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert notice["payload"]["Records"][0]["dynamodb"]["Keys"]["id"]["S"] == "p5"
    # and every other record was delivered
    delivered = {i for batch in invoked_ids() for i in batch if "p5" not in batch}
    assert delivered == set(ids) - {"p5"}


class LaterClock(SystemClock):
    """Wall time two minutes ahead, so every record looks two minutes old."""

    def now(self) -> float:
        return time.time() + 120


def test_drops_records_older_than_the_maximum_age_with_a_notice(
        moto_server: MotoServer, table: tuple[str, str], tmp_path: Path):  # noqa: F811
    # Given changes that are two minutes old and a maximum record age of 60 s
    name, arn = table
    put(moto_server, name, "old1", "old2")
    notices = tmp_path / "dlq.jsonl"
    config = write_config(
        tmp_path, moto_server, arn, maximum_record_age_in_seconds=60,
        destination_config={"on_failure": {"type": "file", "path": str(notices)}})
    # When the daemon runs
    run_daemon(config, clock=LaterClock())
    # Then the handler is never invoked and a RecordAgeExceeded notice has no responseContext
    assert invoked_ids() == []
    [notice] = list(read_notices(notices))
    assert notice["requestContext"]["condition"] == "RecordAgeExceeded"
    assert "responseContext" not in notice
    assert notice["DDBStreamBatchInfo"]["batchSize"] == 2


WINDOW_FINALS: list[dict[str, Any]] = []


def window_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A Powertools-style tumbling-window aggregation: items changed per window."""
    from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent

    parsed = DynamoDBStreamEvent(event)
    state = dict(parsed.state)
    if parsed.is_final_invoke_for_window:
        WINDOW_FINALS.append({"state": state, "window": event["window"],
                              "shardId": parsed.get("shardId"),
                              "eventSourceARN": parsed.get("eventSourceARN")})
        return {"state": state}
    ids = [record.dynamodb.keys["id"] for record in parsed.records if record.dynamodb]
    state["ids"] = [*state.get("ids", []), *ids]
    return {"state": state, "batchItemFailures": []}


def test_tumbling_windows_pass_state_and_end_with_a_final_invoke(
        moto_server: MotoServer, table: tuple[str, str], tmp_path: Path):  # noqa: F811
    # Given 12 item writes and a mapping with 1 s tumbling windows
    WINDOW_FINALS.clear()
    name, arn = table
    ids = [f"w-{i:02d}" for i in range(12)]
    put(moto_server, name, *ids)
    config = write_config(tmp_path, moto_server, arn, tumbling_window_in_seconds=1,
                          batch_size=5, target={"type": "python", "timeout_seconds": 5,
                                                "handler": f"{__name__}:window_handler"})
    # When the daemon reads the stream until its windows have ended
    daemon = Daemon(load_config([str(config)], {}))
    daemon.start()
    try:
        deadline = time.monotonic() + 30
        while sorted(i for f in WINDOW_FINALS for i in f["state"].get("ids", [])) != ids:
            assert time.monotonic() < deadline, WINDOW_FINALS
            time.sleep(0.1)
    finally:
        assert daemon.shutdown()
    # Then every change reached exactly one window's final state, with AWS's fields
    final = WINDOW_FINALS[0]
    assert final["eventSourceARN"] == arn and final["shardId"].startswith("shardId-")
    assert set(final["window"]) == {"start", "end"}
    assert [i for f in WINDOW_FINALS for i in f["state"]["ids"]] == ids
