"""ESM-SPEC §8 checklist, batching lines 11–13, on the real reader and lane worker
(`tests.unit.runtime_fakes.Rig`) and the pure batcher (`esm.pipeline.batching`)."""

from __future__ import annotations

import json

from esm.pipeline.batching import BatchLimits, LaneBatcher
from esm.records import MAX_PAYLOAD_BYTES, Record
from tests.unit.checklist_support import bodies
from tests.unit.runtime_fakes import Rig, ScriptedTarget, mapping_config


def _record(size_bytes: int, n: int = 0) -> Record:
    return Record("lane-0", str(n), f"lane-0:{n}", {}, size_bytes, timestamp=0.0)


# ---- 11 ----------------------------------------------------------------------------------

def test_a_batch_is_invoked_as_soon_as_it_holds_batch_size_records() -> None:
    """Checklist 11: "Batching: invoke when count == BatchSize OR window elapsed OR adding the
    next record would exceed 6 MB (incl. envelope)." — the count."""
    # Given a 60 s window, so only the count can close a batch early
    target = ScriptedTarget()
    rig = Rig(mapping_config(batch_size=3, maximum_batching_window_in_seconds=60), target)
    rig.put(*bodies(1, 2, 3, 4))
    # When the reader runs without the clock moving
    rig.turn()
    rig.turn()
    # Then the full batch went out and the fourth record waits for its window
    assert target.calls == [bodies(1, 2, 3)]


def test_a_partial_batch_is_invoked_when_its_window_elapses() -> None:
    """Checklist 11: "... OR window elapsed ..." """
    # Given batch size 10 and a 5 s window, with two records
    target = ScriptedTarget()
    rig = Rig(mapping_config(batch_size=10, maximum_batching_window_in_seconds=5), target)
    rig.put(*bodies(1, 2))
    # When the reader runs before the window elapses, Then nothing is invoked
    rig.turn()
    rig.clock.advance(4.9)
    rig.turn()
    assert target.calls == []
    # When the window elapses, Then both records go out in one batch
    rig.clock.advance(0.1)
    rig.turn()
    rig.turn()
    assert target.calls == [bodies(1, 2)]


def test_a_batch_closes_before_a_record_that_would_take_the_event_over_6_mb() -> None:
    """Checklist 11: "... OR adding the next record would exceed 6 MB (incl. envelope)." """
    # Given three records of about 2.2 MB each and a batch size of 10
    target = ScriptedTarget()
    rig = Rig(mapping_config(batch_size=10), target)
    blob = "x" * (2_200_000)
    rig.put(*[json.dumps({"id": i, "blob": blob}) for i in range(3)])
    # When the reader runs
    rig.run_until_quiet()
    # Then two fit in one event and the third went into the next one
    assert [len(call) for call in target.calls] == [2, 1]


def test_the_envelope_counts_toward_the_6_mb_limit() -> None:
    """Checklist 11: "... exceed 6 MB (incl. envelope)." — records that fit on their own
    but not together with the event's envelope close the batch."""
    # Given an envelope of 100 bytes and two records that fill the rest minus one byte
    limits = BatchLimits(batch_size=10, window_seconds=0, envelope_bytes=100)
    half = (MAX_PAYLOAD_BYTES - 100) // 2 - 1  # each record also costs one separator byte
    batcher = LaneBatcher("lane-0", limits)
    # When two records exactly fill the event, Then no batch is closed
    assert batcher.add(_record(half, 0), 0.0) == []
    assert batcher.add(_record(half, 1), 0.0) == []
    # When one more byte of record arrives, Then the first two close without it
    closed = batcher.add(_record(1, 2), 0.0)
    assert [len(b) for b in closed] == [2]
    assert len(batcher) == 1


# ---- 12 ----------------------------------------------------------------------------------

def test_a_stream_batch_never_mixes_lanes_and_keeps_each_lane_in_order() -> None:
    """Checklist 12: "Batching: a stream batch never mixes shards; a Kafka event may mix
    partitions but each partition list is offset-ordered." — esm batches per lane
    (partition, shard), so no event mixes them and each lane's list is in order."""
    # Given records spread round-robin over three lanes
    target = ScriptedTarget()
    rig = Rig(mapping_config(batch_size=4, maximum_batching_window_in_seconds=1), target,
              lanes=3)
    rig.put(*bodies(*range(30)))
    # When everything is processed
    for _ in range(20):
        rig.clock.advance(1)
        rig.turn()
    # Then each invocation holds one lane only, and each lane's records arrive in order
    per_lane: dict[str, list[int]] = {}
    for call in rig.target.calls:
        ids = [json.loads(b)["id"] for b in call]
        lanes = {f"lane-{i % 3}" for i in ids}
        assert len(lanes) == 1
        per_lane.setdefault(lanes.pop(), []).extend(ids)
    assert per_lane == {f"lane-{n}": list(range(n, 30, 3)) for n in range(3)}


# ---- 13 ----------------------------------------------------------------------------------

def test_empty_polls_never_invoke_the_target() -> None:
    """Checklist 13: "Batching: no invocation for empty polls or fully-filtered batches." —
    empty polls."""
    target = ScriptedTarget()
    rig = Rig(mapping_config(), target)
    for _ in range(5):
        rig.turn()
        rig.clock.advance(1)
    assert target.calls == []
    assert rig.metrics.value("invocations") == 0


def test_a_fully_filtered_batch_is_not_invoked_but_its_records_are_committed() -> None:
    """Checklist 13: "... no invocation for ... fully-filtered batches." """
    # Given a filter that none of the records match
    target = ScriptedTarget()
    rig = Rig(mapping_config(filter_patterns=('{"body": {"keep": [true]}}',)), target)
    rig.put({"keep": False}, {"other": 1}, "plain text")
    # When the reader runs
    rig.run_until_quiet()
    # Then nothing was invoked, yet all three were read and are finished
    assert target.calls == []
    assert rig.metrics.value("polled") == 3
    assert rig.broker.committed("lane-0") == 3
