"""Contract: parallelization_factor on the shard sources (Kinesis, DynamoDB Streams), run by
the real core against moto's server. What AWS promises (ESM-SPEC §1.2 ParallelizationFactor)
and esm keeps: records of one partition key / item key in order, keys of one shard running
side by side, and the shard's checkpoint never past a record still unfinished in another
slot. One key's first record is held in the handler until every other record is done."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from connectors.shards.model import is_sequence
from connectors.shards.sqlite_leases import SqliteLeaseTable
from esm.config.loading import load_config
from esm.pipeline.lane_buffer import key_slot
from esm.runtime.daemon import Daemon
from tests.servers.moto_server import MotoServer, moto_server  # noqa: F401

FACTOR = 4
RECORDS = 80


class Seen:
    """What the handler saw; the slow key's records wait on `gate`."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.deliveries: list[tuple[str, int, str]] = []  # key, n, sequence number
        self.active = 0
        self.most_active = 0
        self.gate = threading.Event()
        self.slow_key = ""


SEEN = Seen()


def handler(event: dict[str, Any], context: Any) -> None:
    records = [_read(r) for r in event["Records"]]
    with SEEN.lock:
        SEEN.active += 1
        SEEN.most_active = max(SEEN.most_active, SEEN.active)
    try:
        if any(key == SEEN.slow_key for key, _n, _seq in records):
            SEEN.gate.wait(60)
        time.sleep(0.03)
        with SEEN.lock:
            SEEN.deliveries.extend(records)
    finally:
        with SEEN.lock:
            SEEN.active -= 1


def _read(record: dict[str, Any]) -> tuple[str, int, str]:
    if "kinesis" in record:
        data = json.loads(base64.b64decode(record["kinesis"]["data"]))
        return record["kinesis"]["partitionKey"], data["n"], record["kinesis"]["sequenceNumber"]
    image = record["dynamodb"]["NewImage"]
    return image["id"]["S"], int(image["n"]["N"]), record["dynamodb"]["SequenceNumber"]


@pytest.fixture(autouse=True)
def fresh_seen() -> Iterator[None]:
    global SEEN
    SEEN = Seen()
    yield
    SEEN.gate.set()


def keys_apart(ordering_key: Any, slow: str) -> list[str]:
    """Five keys whose slot differs from the slow key's (so only it is held back)."""
    slot = key_slot(ordering_key(slow), FACTOR)
    return [k for k in (f"key{i}" for i in range(40))
            if key_slot(ordering_key(k), FACTOR) != slot][:5]


def kinesis_source(server: MotoServer, tmp_path: Path) -> dict[str, Any]:
    name, _ = server.create_kinesis_stream()
    kinesis = server.client("kinesis")
    SEEN.slow_key = "slow"
    keys = keys_apart(lambda k: k, "slow")
    for n in range(RECORDS):
        key = "slow" if n == 0 else keys[n % len(keys)]
        kinesis.put_record(StreamName=name, Data=json.dumps({"n": n}).encode(),
                           PartitionKey=key)
    return {"type": "kinesis", "stream_name": name, "poll_interval_seconds": 0.2}


def dynamodb_source(server: MotoServer, tmp_path: Path) -> dict[str, Any]:
    table, arn = server.create_table_with_stream()
    client = server.client("dynamodb")
    SEEN.slow_key = "slow"
    def item_key(k: str) -> str:
        return orjson.dumps({"id": {"S": k}}, option=orjson.OPT_SORT_KEYS).decode()
    keys = keys_apart(item_key, "slow")
    for n in range(RECORDS):
        key = "slow" if n == 0 else keys[n % len(keys)]
        client.put_item(TableName=table, Item={"id": {"S": key}, "n": {"N": str(n)}})
    return {"type": "dynamodb_streams", "stream_arn": arn}


def config(tmp_path: Path, server: MotoServer, source: dict[str, Any]) -> Path:
    source.update(starting_position="TRIM_HORIZON", endpoint_url=server.endpoint_url,
                  region="us-east-1", access_key_id="test", secret_access_key="test",
                  checkpoint={"type": "sqlite", "path": str(tmp_path / "cp.sqlite")})
    body = {"name": "shards", "source": source, "batch_size": 4,
            "parallelization_factor": FACTOR,
            "target": {"type": "python", "handler": f"{__name__}:handler",
                       "timeout_seconds": 60}}
    path = tmp_path / "esm.yaml"
    path.write_text(yaml.safe_dump({"mappings": [body], "server": {"enabled": False}}))
    return path


def checkpoints(tmp_path: Path) -> list[str]:
    table = SqliteLeaseTable(str(tmp_path / "cp.sqlite"))
    try:
        return [lease.checkpoint for lease in table.list("shards")]
    finally:
        table.close()


def wait_for(condition: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"after {seconds}s: {what}"
        time.sleep(0.05)


@pytest.mark.parametrize("make_source", [kinesis_source, dynamodb_source],
                         ids=["kinesis", "dynamodb_streams"])
def test_keys_run_side_by_side_in_order_and_the_checkpoint_waits_for_the_slowest(
        moto_server: MotoServer, tmp_path: Path, make_source: Any) -> None:  # noqa: F811
    # Given one shard whose first record's key is held in the handler, 79 records of
    # five other keys behind it, and factor 4
    path = config(tmp_path, moto_server, make_source(moto_server, tmp_path))
    daemon = Daemon(load_config([str(path)], {}))
    daemon.start()
    try:
        # When every record but the held one is finished
        wait_for(lambda: len(SEEN.deliveries) == RECORDS - 1, 60,
                 f"{len(SEEN.deliveries)} delivered")
        time.sleep(0.5)  # settlements and checkpoint writes land
        # Then the shard's checkpoint has not passed the held record
        held = checkpoints(tmp_path)
        # And once it is released everything finishes and the checkpoint reaches the end
        SEEN.gate.set()
        assert daemon.run_until_idle(30, settle_seconds=1.0)
    finally:
        SEEN.gate.set()
        assert daemon.shutdown()
    first_sequence = min(int(seq) for _k, _n, seq in SEEN.deliveries)
    assert [n for key, n, _seq in SEEN.deliveries if key == "slow"] == [0]
    assert all(not is_sequence(c) or int(c) < first_sequence for c in held), held
    last_sequence = max(int(seq) for _k, _n, seq in SEEN.deliveries)
    assert [int(c) for c in checkpoints(tmp_path) if is_sequence(c)] == [last_sequence]
    by_key: dict[str, list[int]] = {}
    for key, n, _seq in SEEN.deliveries:
        by_key.setdefault(key, []).append(n)
    assert sorted(n for ns in by_key.values() for n in ns) == list(range(RECORDS))
    assert all(ns == sorted(ns) for ns in by_key.values())
    assert SEEN.most_active > 1
