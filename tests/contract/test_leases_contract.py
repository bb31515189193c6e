"""Contract: two replicas split a stream's shards through leases and one takes over when
the other dies — with the DynamoDB lease table (moto) and with a shared SQLite file."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from connectors.kinesis.source import KinesisSource
from connectors.shards.settings import CheckpointSettings
from esm.records import Record
from tests.contract.test_kinesis_contract import open_source
from tests.servers.moto_server import MotoServer, moto_server  # noqa: F401


def checkpoint_settings(kind: str, server: MotoServer, tmp_path: Path) -> CheckpointSettings:
    if kind == "sqlite":
        return CheckpointSettings(path=str(tmp_path / "shared.sqlite"), lease_duration_seconds=1)
    return CheckpointSettings(type="dynamodb", table=f"leases-{uuid.uuid4().hex[:8]}",
                              endpoint_url=server.endpoint_url, lease_duration_seconds=1)


def turn(sources: list[KinesisSource], seen: dict[str, list[Record]], seconds: float) -> None:
    """Poll and ack every replica in turn for `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for source in sources:
            records = source.poll(100, 0.1)
            seen.setdefault(id(source).__str__(), []).extend(records)
            if records:
                source.ack(records)


def held(source: KinesisSource) -> set[str]:
    assert source.reader is not None
    return set(source.reader.shards)


@pytest.mark.parametrize("kind", ["dynamodb", "sqlite"])
def test_two_replicas_split_shards_and_one_takes_over_when_the_other_dies(
        kind: str, moto_server: MotoServer, tmp_path: Path):  # noqa: F811
    # Given a four-shard stream and two replicas sharing one lease table
    name, _ = moto_server.create_kinesis_stream(shards=4)
    kinesis = moto_server.client("kinesis")
    cp = checkpoint_settings(kind, moto_server, tmp_path)
    a, _ = open_source(moto_server, name, tmp_path, checkpoint=cp, worker_id="a")
    b, listener_b = open_source(moto_server, name, tmp_path, checkpoint=cp, worker_id="b")
    seen: dict[str, Any] = {}
    try:
        # When they run for a while
        turn([a, b], seen, 4)
        # Then each holds two shards and no shard is held twice
        assert len(held(a)) == 2 and len(held(b)) == 2 and not held(a) & held(b)
        for i in range(20):
            kinesis.put_record(StreamName=name, Data=f"r{i}".encode(), PartitionKey=f"k{i}")
        turn([a, b], seen, 2)
        got = [r.payload["kinesis"]["data"] for records in seen.values() for r in records]
        assert len(got) == len(set(got)) == 20
        # When replica a dies without releasing its leases and more records arrive
        for i in range(20, 30):
            kinesis.put_record(StreamName=name, Data=f"r{i}".encode(), PartitionKey=f"k{i}")
        turn([b], seen, 5)
        # Then b takes over every shard and reads a's unread records too
        assert len(held(b)) == 4
        got = {r.payload["kinesis"]["data"] for records in seen.values() for r in records}
        assert len(got) == 30
        assert set(listener_b.assigned) == held(b)
    finally:
        b.close()
        a.reader = None  # a "died": its leases stay with it until they expire


@pytest.mark.parametrize("kind", ["dynamodb", "sqlite"])
def test_a_tumbling_window_saved_by_one_replica_is_resumed_by_the_next_owner(
        kind: str, moto_server: MotoServer, tmp_path: Path):  # noqa: F811
    # Given a one-shard stream whose owner saved a window document with its state
    name, _ = moto_server.create_kinesis_stream(shards=1)
    cp = checkpoint_settings(kind, moto_server, tmp_path)
    a, _ = open_source(moto_server, name, tmp_path, checkpoint=cp, worker_id="a")
    b, listener_b = open_source(moto_server, name, tmp_path, checkpoint=cp, worker_id="b")
    document = {"start": 60.0, "end": 120.0, "state": {"sum": 42}, "lastPosition": "7"}
    try:
        turn([a, b], {}, 1)
        [shard] = held(a) or held(b)
        owner, other = (a, b) if held(a) else (b, a)
        owner.save_window(shard, document)
        # When the non-owner tries to overwrite it, the write is refused (conditional)
        other.save_window(shard, {"state": "stolen"})
        # And the owner dies; the other replica takes the lease over
        owner.reader = None
        turn([other], {}, 4)
        # Then the new owner loads the window with its state
        assert held(other) == {shard}
        assert other.load_window(shard) == document
    finally:
        for source in (a, b):
            if source.reader is not None:
                source.close()
