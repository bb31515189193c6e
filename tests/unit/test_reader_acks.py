"""Reader: queue-family acks of one turn reach the source in one call (one XACK or
DeleteMessageBatch round trip); stream acks stay one contiguous run per lane."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

from esm.records import Record
from tests.unit.runtime_fakes import Rig, ScriptedTarget, mapping_config


def spy_acks(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    calls: list[list[str]] = []
    original = rig.source.ack

    def ack(records: Sequence[Record]) -> None:
        calls.append([r.item_id for r in records])
        original(records)

    monkeypatch.setattr(rig.source, "ack", ack)
    return calls


def settle_two_lanes(family: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Rig, list[list[str]]]:
    """Two lanes whose batches both finished before the reader looked; returns the rig
    and the ack calls the source saw once the reader applied the settlements."""
    rig = Rig(mapping_config(family, batch_size=2), ScriptedTarget(), lanes=2)
    calls = spy_acks(rig, monkeypatch)
    for lane in ("lane-0", "lane-1"):
        rig.put(json.dumps({"id": 1}), json.dumps({"id": 2}), lane=lane)
    rig.reader.step()  # poll: both batches close on count
    rig.reader.step()  # dispatch both
    assert rig.executor.run_all() == 2
    rig.reader.in_flight.apply(0)
    return rig, calls


def test_queue_acks_settled_in_one_turn_go_to_the_source_in_one_call(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Given two queue lanes whose batches finished / When the reader applies the settlements
    rig, calls = settle_two_lanes("queue", monkeypatch)
    # Then all four records were acked in a single call and counted as deleted
    assert len(calls) == 1 and len(calls[0]) == 4
    assert rig.metrics.value("deleted") == 4


def test_stream_acks_stay_one_run_per_lane(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the same on a stream source / When the reader applies the settlements
    rig, calls = settle_two_lanes("stream", monkeypatch)
    # Then each lane's run was committed by its own call
    assert sorted(len(c) for c in calls) == [2, 2]
    assert {ids[0].split(":")[0] for ids in calls} == {"lane-0", "lane-1"}
    assert rig.metrics.value("committed") == 4
