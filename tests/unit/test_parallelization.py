"""parallelization_factor at the reader: order per key, keys concurrent, the lane's
checkpoint never past an unfinished record, a failing key holding only its own slot
(issue: per-key parallelism; ESM-SPEC §1.2 ParallelizationFactor)."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from typing import Any

import pytest

from connectors.memory.source import MemorySettings
from esm.config.types import ConnectorSpec
from esm.pipeline.lane_buffer import key_slot
from esm.records import Batch
from tests.unit.runtime_fakes import ListDestination, Rig, ScriptedTarget, mapping_config

KEYS = [f"k{n}" for n in range(8)]


def keyed_mapping(factor: int, **overrides: Any) -> Any:
    base = mapping_config(parallelization_factor=factor, **overrides)
    settings = MemorySettings(ordering_key_field="key")
    return replace(base, source=ConnectorSpec("memory", base.source.cls, settings))


def put_keyed(rig: Rig, count: int, rng: random.Random) -> None:
    for n in range(count):
        rig.put({"key": rng.choice(KEYS), "n": n}, lane="lane-0")


def body(text: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(text)
    return value


def pending_batches(rig: Rig) -> list[Batch]:
    return [args[1] for _fn, args in rig.executor.pending]


def run_pending(rig: Rig, keep: Any = lambda batch: False) -> None:
    """Run the dispatched batches, except those `keep` says stay in flight."""
    pending, rig.executor.pending = rig.executor.pending, []
    for fn, args in pending:
        if keep(args[1]):
            rig.executor.pending.append((fn, args))
        else:
            fn(*args)
    rig.reader.in_flight.apply(0)


@pytest.mark.parametrize("seed", range(6))
def test_each_key_is_delivered_in_order_under_random_failures_and_nothing_is_lost(
        seed: int) -> None:
    # Given 300 records over 8 keys on one lane, factor 4, a target failing at random
    rng = random.Random(seed)
    target = ScriptedTarget(lambda records: _maybe_fail(rng))
    rig = Rig(keyed_mapping(4, batch_size=5, maximum_retry_attempts=-1,
                            bisect_batch_on_function_error=seed % 2 == 0),
              target, max_in_flight=8)
    put_keyed(rig, 300, rng)
    # When the reader runs until idle
    rig.run_until_quiet(max_turns=2000)
    # Then each key's first deliveries are in production order, every record was
    # delivered, and the lane's checkpoint is past all of them
    first: dict[str, list[int]] = {}
    seen: set[int] = set()
    for text in target.invoked_bodies():
        record = body(text)
        if record["n"] not in seen:
            seen.add(record["n"])
            first.setdefault(record["key"], []).append(record["n"])
    assert seen == set(range(300))
    assert all(ns == sorted(ns) for ns in first.values())
    assert rig.broker.committed("lane-0") == 300


def _maybe_fail(rng: random.Random) -> None:
    if rng.random() < 0.3:
        raise RuntimeError("random failure")


def test_different_keys_of_one_lane_are_in_flight_at_once_up_to_the_factor() -> None:
    # Given one lane with records of many keys, factor 4
    rig = Rig(keyed_mapping(4, batch_size=2), ScriptedTarget(), max_in_flight=10)
    put_keyed(rig, 200, random.Random(1))
    # When the reader polls and dispatches without running the workers
    rig.turn(run_workers=False)
    rig.turn(run_workers=False)
    # Then four batches of the same lane are dispatched, one per key slot, no key in two
    batches = pending_batches(rig)
    assert len(batches) == 4
    assert {b.lane for b in batches} == {"lane-0"}
    slots = [{r.ordering_key for r in b.records} for b in batches]
    assert all(not (a & b) for i, a in enumerate(slots) for b in slots[i + 1:])


def test_factor_1_keeps_one_batch_in_flight_per_lane() -> None:
    rig = Rig(keyed_mapping(1, batch_size=2), ScriptedTarget(), max_in_flight=10)
    put_keyed(rig, 50, random.Random(1))
    rig.turn(run_workers=False)
    rig.turn(run_workers=False)
    assert len(pending_batches(rig)) == 1


def test_the_checkpoint_stops_at_the_lowest_unfinished_record_while_later_keys_finish(
) -> None:
    # Given a lane whose first record's key is slow, and later records of other keys
    rig = Rig(keyed_mapping(10, batch_size=1), ScriptedTarget(), max_in_flight=10)
    rig.put({"key": "slow", "n": 0}, lane="lane-0")
    for n in range(1, 6):
        rig.put({"key": f"fast{n}", "n": n}, lane="lane-0")
    rig.turn(run_workers=False)
    rig.turn(run_workers=False)
    def is_slow(batch: Batch) -> bool:
        return any(r.ordering_key == "slow" for r in batch.records)
    # When every batch but the slow key's finishes
    run_pending(rig, keep=is_slow)
    for _ in range(5):
        rig.turn(run_workers=False)
        run_pending(rig, keep=is_slow)
    # Then nothing is committed: record 0 is unfinished, so the gap holds the checkpoint
    delivered = {body(t)["n"] for t in rig.target.invoked_bodies()}
    assert delivered == {1, 2, 3, 4, 5}
    assert rig.broker.committed("lane-0") == 0
    # And once the slow record finishes the checkpoint moves past all six at once
    run_pending(rig)
    assert rig.broker.committed("lane-0") == 6


def test_a_failing_key_holds_only_its_own_slot_and_goes_to_the_destination_alone() -> None:
    # Given a key that always fails, 2 retries and an on-failure destination
    def behaviour(records: list[dict[str, Any]]) -> None:
        if any(body(r["body"])["key"] == "bad" for r in records):
            raise RuntimeError("bad key")
    target = ScriptedTarget(behaviour)
    destination = ListDestination()
    rig = Rig(keyed_mapping(5, batch_size=2, maximum_retry_attempts=2), target,
              destination, max_in_flight=10)
    rng = random.Random(4)
    for n in range(60):
        key = "bad" if n in (10, 11) else rng.choice(KEYS)
        rig.put({"key": key, "n": n}, lane="lane-0")
    # When the reader runs until idle
    rig.run_until_quiet()
    # Then only the bad key's records were dead-lettered, every other record was delivered
    # exactly once, and the lane's checkpoint is past everything
    dead = sorted(body(t)["n"] for t in destination.dead_bodies())
    assert dead == [10, 11]
    good = [body(t)["n"] for t in target.invoked_bodies() if body(t)["key"] != "bad"]
    assert sorted(good) == [n for n in range(60) if n not in (10, 11)]
    assert rig.broker.committed("lane-0") == 60


def test_revoking_a_lane_while_its_slots_are_busy_settles_them_and_commits_a_prefix() -> None:
    # Given a lane with several key slots in flight, the first slot not finishing in time
    rig = Rig(keyed_mapping(4, batch_size=3), ScriptedTarget(), max_in_flight=10)
    put_keyed(rig, 40, random.Random(2))
    rig.turn(run_workers=False)
    rig.turn(run_workers=False)
    first_offset = min(int(r.position) for b in pending_batches(rig) for r in b.records)
    def holds_first(batch: Batch) -> bool:
        return any(int(r.position) == first_offset for r in batch.records)
    run_pending(rig, keep=holds_first)
    # When the lane is revoked: the other slots settled, the first never does
    rig.reader.lanes_revoked(["lane-0"])
    # Then nothing past the unfinished first record was committed, and the lane's state is
    # gone: a late settlement of the stuck batch is never acked
    assert rig.broker.committed("lane-0") == 0
    assert rig.reader.buffer.lanes == {}
    run_pending(rig)
    assert rig.broker.committed("lane-0") == 0
    assert rig.reader.acks.outstanding() == 0


def test_a_stuck_slot_stops_reading_once_uncommitted_records_reach_the_bound() -> None:
    # Given a first record whose key never finishes, and a long backlog of other keys
    rig = Rig(keyed_mapping(4, batch_size=5), ScriptedTarget(), max_in_flight=10)
    rig.put({"key": "stuck", "n": 0}, lane="lane-0")
    others = [k for k in KEYS if key_slot(k, 4) != key_slot("stuck", 4)]  # never behind it
    for n in range(1, 1000):
        rig.put({"key": others[n % len(others)], "n": n}, lane="lane-0")
    def is_stuck(batch: Batch) -> bool:
        return any(r.ordering_key == "stuck" for r in batch.records)
    # When the other slots keep finishing for many turns
    for _ in range(40):
        rig.turn(run_workers=False)
        run_pending(rig, keep=is_stuck)
    # Then reading stopped at a bound set by configuration, not by the backlog, and the
    # checkpoint never passed the stuck record
    outstanding = rig.reader.acks.outstanding()
    assert 0 < outstanding <= rig.reader.max_buffered_records * 5
    assert rig.broker.committed("lane-0") == 0
    # And once it finishes everything flows again to the end
    run_pending(rig)
    rig.run_until_quiet(max_turns=2000)
    assert rig.broker.committed("lane-0") == 1000
