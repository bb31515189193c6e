"""Contract: the Kinesis source against moto's server — the AWS event shape through the real
core, and a shard split read without loss with the parent finished before its children
(the source driven directly, as the reader thread would)."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

import yaml

from connectors.kinesis.source import KinesisSettings, KinesisSource
from connectors.shards.settings import CheckpointSettings
from esm.clock import SystemClock
from esm.config.loading import load_config
from esm.interfaces import ConnectorContext
from esm.records import Record
from esm.runtime.daemon import Daemon
from tests.servers.moto_server import MotoServer, moto_server  # noqa: F401

EVENTS: list[dict[str, Any]] = []


def handler(event: dict[str, Any], context: Any) -> None:
    EVENTS.append(event)


class Listener:
    def __init__(self) -> None:
        self.assigned: list[str] = []
        self.revoked: list[str] = []

    def lanes_assigned(self, lanes: Collection[str]) -> None:
        self.assigned.extend(sorted(lanes))

    def lanes_revoked(self, lanes: Collection[str]) -> None:
        self.revoked.extend(sorted(lanes))


def open_source(server: MotoServer, name: str, tmp_path: Path, **overrides: Any
                ) -> tuple[KinesisSource, Listener]:
    values: dict[str, Any] = {
        "stream_name": name, "starting_position": "TRIM_HORIZON",
        "endpoint_url": server.endpoint_url, "region": "us-east-1",
        "access_key_id": "test", "secret_access_key": "test", "poll_interval_seconds": 0.2,
        "shard_discovery_interval_seconds": 0.5,
        "checkpoint": CheckpointSettings(path=str(tmp_path / "cp.sqlite"))}
    values.update(overrides)
    context = ConnectorContext("kinesis-contract", threading.Event(), SystemClock())
    source = KinesisSource(KinesisSettings(**values), context)
    listener = Listener()
    source.open(listener)
    return source, listener


def drain(source: KinesisSource, until: int, seen: list[Record], seconds: float = 20) -> None:
    """Poll and ack like the reader until `until` records were seen in total."""
    deadline = time.monotonic() + seconds
    while len(seen) < until and time.monotonic() < deadline:
        records = source.poll(100, 0.3)
        seen.extend(records)
        if records:
            source.ack(records)


def test_event_has_the_aws_kinesis_shape_and_data_filters_on_decoded_json(
        moto_server: MotoServer, tmp_path: Path):  # noqa: F811
    # Given a stream with one JSON record and one plain-text record
    EVENTS.clear()
    name, arn = moto_server.create_kinesis_stream()
    kinesis = moto_server.client("kinesis")
    kinesis.put_record(StreamName=name, Data=b'{"type": "order", "n": 1}', PartitionKey="k1")
    kinesis.put_record(StreamName=name, Data=b"not json", PartitionKey="k2")
    config = tmp_path / "esm.yaml"
    config.write_text(yaml.safe_dump({"server": {"enabled": False}, "mappings": [{
        "name": "kin", "target": {"type": "python", "handler": f"{__name__}:handler"},
        "filter_criteria": {"filters": [{"pattern": '{"data": {"type": ["order"]}}'}]},
        "source": {"type": "kinesis", "stream_arn": arn, "starting_position": "TRIM_HORIZON",
                   "endpoint_url": moto_server.endpoint_url, "region": "us-east-1",
                   "access_key_id": "test", "secret_access_key": "test",
                   "poll_interval_seconds": 0.2,
                   "checkpoint": {"path": str(tmp_path / "cp.sqlite")}}}]}))
    # When the daemon runs with a JSON data filter
    daemon = Daemon(load_config([str(config)], {}))
    daemon.start()
    try:
        assert daemon.run_until_idle(30, settle_seconds=1.0)
    finally:
        assert daemon.shutdown()
    # Then only the JSON record is delivered, in AWS's shape (ESM-SPEC §2.2, §3.4)
    [event] = EVENTS
    [record] = event["Records"]
    assert base64.b64decode(record["kinesis"]["data"]) == b'{"type": "order", "n": 1}'
    assert record["kinesis"]["partitionKey"] == "k1"
    assert record["eventSource"] == "aws:kinesis" and record["eventName"] == "aws:kinesis:record"
    assert record["eventID"] == f"shardId-000000000000:{record['kinesis']['sequenceNumber']}"
    assert record["eventSourceARN"] == arn
    assert isinstance(record["kinesis"]["approximateArrivalTimestamp"], float)


def test_shard_split_is_read_without_loss_parent_before_children(
        moto_server: MotoServer, tmp_path: Path):  # noqa: F811
    # Given a one-shard stream with six records, read by the source
    name, _ = moto_server.create_kinesis_stream()
    kinesis = moto_server.client("kinesis")
    for i in range(6):
        kinesis.put_record(StreamName=name, Data=f"before-{i}".encode(), PartitionKey=f"p{i}")
    source, listener = open_source(moto_server, name, tmp_path)
    seen: list[Record] = []
    try:
        drain(source, 3, seen)
        # When the shard is split and six more records are written to the children
        shard = kinesis.list_shards(StreamName=name)["Shards"][0]
        middle = int(shard["HashKeyRange"]["EndingHashKey"]) // 2
        kinesis.split_shard(StreamName=name, ShardToSplit=shard["ShardId"],
                            NewStartingHashKey=str(middle))
        for i in range(6):
            kinesis.put_record(StreamName=name, Data=f"after-{i}".encode(),
                               PartitionKey=f"q{i}")
        drain(source, 12, seen)
        deadline = time.monotonic() + 10
        while len(listener.assigned) < 3 and time.monotonic() < deadline:
            drain(source, len(seen) + 1, seen, seconds=0.5)
    finally:
        source.close()
    # Then every record arrives once; records of the parent come first, in order, and the
    # children start only after the parent was finished (moto keeps routing writes to the
    # closed parent, extending its ending sequence number, so children may stay empty)
    data = [base64.b64decode(r.payload["kinesis"]["data"]).decode() for r in seen]
    assert sorted(data) == sorted([f"before-{i}" for i in range(6)]
                                  + [f"after-{i}" for i in range(6)])
    parent = [r for r in seen if r.lane == "shardId-000000000000"]
    assert seen[:len(parent)] == parent
    assert [int(r.position) for r in parent] == sorted(int(r.position) for r in parent)
    assert "shardId-000000000000" in listener.revoked  # finished, lease released
    assert {"shardId-000000000001", "shardId-000000000002"} <= set(listener.assigned)


WINDOW_EVENTS: list[dict[str, Any]] = []


def window_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    WINDOW_EVENTS.append(event)
    state = dict(event["state"])
    state["n"] = state.get("n", 0) + len(event["Records"])
    return {"state": state}


def test_resharding_closes_the_parents_tumbling_window(
        moto_server: MotoServer, tmp_path: Path):  # noqa: F811
    # Given a one-shard stream read with 15-minute tumbling windows (they never end by time
    # in this test)
    WINDOW_EVENTS.clear()
    name, arn = moto_server.create_kinesis_stream()
    kinesis = moto_server.client("kinesis")
    for i in range(4):
        kinesis.put_record(StreamName=name, Data=f"r{i}".encode(), PartitionKey=f"p{i}")
    config = tmp_path / "esm.yaml"
    config.write_text(yaml.safe_dump({"server": {"enabled": False}, "mappings": [{
        "name": "kin-windows", "tumbling_window_in_seconds": 900,
        "target": {"type": "python", "handler": f"{__name__}:window_handler"},
        "source": {"type": "kinesis", "stream_arn": arn, "starting_position": "TRIM_HORIZON",
                   "endpoint_url": moto_server.endpoint_url, "region": "us-east-1",
                   "access_key_id": "test", "secret_access_key": "test",
                   "poll_interval_seconds": 0.2, "shard_discovery_interval_seconds": 0.5,
                   "checkpoint": {"path": str(tmp_path / "cp.sqlite")}}}]}))
    daemon = Daemon(load_config([str(config)], {}))
    daemon.start()
    try:
        deadline = time.monotonic() + 20
        while sum(len(e["Records"]) for e in WINDOW_EVENTS) < 4:
            assert time.monotonic() < deadline, WINDOW_EVENTS
            time.sleep(0.1)
        # When the shard is split (the parent is read to its end and finished)
        shard = kinesis.list_shards(StreamName=name)["Shards"][0]
        middle = int(shard["HashKeyRange"]["EndingHashKey"]) // 2
        kinesis.split_shard(StreamName=name, ShardToSplit=shard["ShardId"],
                            NewStartingHashKey=str(middle))
        deadline = time.monotonic() + 20
        while not any(e["isFinalInvokeForWindow"] for e in WINDOW_EVENTS):
            assert time.monotonic() < deadline, "the parent's window was never closed"
            time.sleep(0.1)
    finally:
        assert daemon.shutdown()
    # Then the parent's window got its final invoke with the whole state, long before the
    # window's end
    [final] = [e for e in WINDOW_EVENTS if e["isFinalInvokeForWindow"]]
    assert final["shardId"] == "shardId-000000000000" and final["state"] == {"n": 4}
    assert final["Records"] == [] and final["isWindowTerminatedEarly"] is False
