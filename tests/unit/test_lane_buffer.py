"""LaneBuffer back-pressure: a lane with a batch waiting is paused, and the whole buffer
pauses every lane at its bound (DESIGN §2)."""

from __future__ import annotations

from collections.abc import Collection

from esm.pipeline.batching import BatchLimits
from esm.pipeline.lane_buffer import LaneBuffer
from esm.records import Record


class PauseLog:
    """The part of a Source the buffer talks to: pause and resume, recorded."""

    def __init__(self) -> None:
        self.paused: set[str] = set()
        self.calls: list[tuple[str, tuple[str, ...]]] = []

    def pause(self, lanes: Collection[str]) -> None:
        self.paused.update(lanes)
        self.calls.append(("pause", tuple(lanes)))

    def resume(self, lanes: Collection[str]) -> None:
        self.paused.difference_update(lanes)
        self.calls.append(("resume", tuple(lanes)))


def record(lane: str, n: int) -> Record:
    return Record(lane, str(n), f"{lane}:{n}", {"n": n}, 10, 0.0)


def make(lanes: list[str], *, batch_size: int = 2, max_records: int = 10,
         ) -> tuple[LaneBuffer, PauseLog]:
    log = PauseLog()
    buffer = LaneBuffer(log, BatchLimits(batch_size, 0.0), parallelization_factor=1,  # type: ignore[arg-type]
                        max_in_flight=1, min_records=max_records, max_bytes=1 << 30)
    buffer.assigned(lanes)
    return buffer, log


def fill(buffer: LaneBuffer, lane: str, start: int, count: int) -> None:
    for n in range(start, start + count):
        buffer.add(record(lane, n), 0.0)


def test_a_lane_with_a_batch_waiting_is_paused_until_it_is_dispatched() -> None:
    buffer, log = make(["a", "b"])
    fill(buffer, "a", 0, 3)  # one batch waits on a, one record in its open batch
    fill(buffer, "b", 0, 1)
    # Then a alone is paused, and resumes when its batch is dispatched
    assert log.paused == {"a"}
    buffer.take(buffer.lanes["a"])
    assert log.paused == set()
    assert log.calls == [("pause", ("a",)), ("resume", ("a",))]


def test_a_full_buffer_pauses_every_lane_and_resumes_them_as_it_drains() -> None:
    buffer, log = make(["a", "b"], max_records=4)
    fill(buffer, "a", 0, 1)
    fill(buffer, "b", 0, 3)
    assert buffer.apply_limit() is True
    assert log.paused == {"a", "b"}
    buffer.take(buffer.lanes["b"])
    assert buffer.apply_limit() is False
    assert log.paused == set()


def test_add_all_buffers_exactly_like_add_one_by_one() -> None:
    # Given polls mixing lanes, and records too large for any event
    import random

    rng = random.Random(3)
    for factor in (1, 3):
        for _ in range(100):
            batch_size = rng.choice([1, 2, 4])
            limits = BatchLimits(batch_size, 0.0, envelope_bytes=14, max_bytes=80)
            one = LaneBuffer(PauseLog(), limits, parallelization_factor=factor,  # type: ignore[arg-type]
                             max_in_flight=1, min_records=1000, max_bytes=1 << 30)
            many = LaneBuffer(PauseLog(), limits, parallelization_factor=factor,  # type: ignore[arg-type]
                              max_in_flight=1, min_records=1000, max_bytes=1 << 30)
            records = [Record(rng.choice("ab"), str(n), str(n), {}, rng.choice([5, 30, 70]),
                              0.0, ordering_key=str(n % 5)) for n in range(rng.randint(1, 20))]
            # When one buffer gets them one by one and the other in one call
            for r in records:
                one.add(r, 0.0)
            many.add_all(records, 0.0)
            # Then both hold the same batches, lanes and counts
            def shape(buffer: LaneBuffer) -> dict[str, list[list[str]]]:
                return {slot: [[r.position for r in b.records] for b in lane.ready]
                        + [[str(len(lane.batcher))]] for slot, lane in buffer.lanes.items()}
            assert shape(many) == shape(one)
            assert (many.records, many.bytes) == (one.records, one.bytes)


def keyed(lane: str, n: int, key: str | None) -> Record:
    return Record(lane, str(n), f"{lane}:{n}", {"n": n}, 10, 0.0, ordering_key=key)


def test_a_lane_with_key_slots_pauses_once_as_many_batches_wait_as_it_has_slots() -> None:
    # Given a lane split into 3 key slots, and keys of 3 different slots
    log = PauseLog()
    buffer = LaneBuffer(log, BatchLimits(1, 0.0), parallelization_factor=3,  # type: ignore[arg-type]
                        max_in_flight=10, min_records=100, max_bytes=1 << 30)
    buffer.assigned(["p"])
    keys: dict[str, str] = {}
    for n in range(100):
        keys.setdefault(buffer._lane(keyed("p", 0, f"k{n}")).slot, f"k{n}")
    assert len(keys) == 3
    # When two slots have a batch waiting, the lane still reads (the third slot is idle)
    for n, key in enumerate(list(keys.values())[:2]):
        buffer.add(keyed("p", n, key), 0.0)
    assert log.paused == set()
    # Then a waiting batch in every slot pauses it, and one dispatch resumes it
    buffer.add(keyed("p", 2, list(keys.values())[2]), 0.0)
    assert log.paused == {"p"}
    buffer.take(next(buffer.dispatchable()))
    assert log.paused == set()
    assert log.calls == [("pause", ("p",)), ("resume", ("p",))]
    assert buffer.paused_lanes() == 0


def test_records_without_a_key_share_one_slot_and_keep_lane_order() -> None:
    # Given keyless records mixed with keyed ones on one lane
    buffer = LaneBuffer(PauseLog(), BatchLimits(100, 0.0), parallelization_factor=5,  # type: ignore[arg-type]
                        max_in_flight=10, min_records=100, max_bytes=1 << 30)
    records = [keyed("p", n, None if n % 2 else f"k{n}") for n in range(20)]
    buffer.add_all(records, 0.0)
    # Then every keyless record sits in one slot, in lane order
    slots = [_buffered(lane) for lane in buffer.lanes.values()]
    keyless = [s for s in slots if any(r.ordering_key is None for r in s)]
    assert len(keyless) == 1
    assert [r.position for r in keyless[0]] == [str(n) for n in range(1, 20, 2)]


def _buffered(lane: object) -> list[Record]:
    batch = lane.batcher.flush()  # type: ignore[attr-defined]
    return [r for b in [*lane.ready, *([batch] if batch else [])] for r in b.records]  # type: ignore[attr-defined]


def test_only_lanes_the_source_did_not_announce_are_dropped_and_only_when_idle() -> None:
    # Given an announced lane and a discovered one (an SQS FIFO group), each with a batch
    # in flight and the discovered one with another record buffered
    buffer, _ = make(["a"], batch_size=1)
    fill(buffer, "a", 0, 1)
    fill(buffer, "g", 0, 2)
    a, g = buffer.lanes["a"], buffer.lanes["g"]
    buffer.take(a)
    buffer.take(g)
    # When both finish: the discovered lane still has a batch waiting, so it stays
    for lane in (a, g):
        buffer.finished(lane)
        buffer.drop_if_idle(lane)
    assert set(buffer.lanes) == {"a", "g"}
    # When its last batch is taken, it is kept while busy, and dropped once finished
    buffer.take(g)
    buffer.drop_if_idle(g)
    assert "g" in buffer.lanes
    buffer.finished(g)
    buffer.drop_if_idle(g)
    # Then only the announced lane keeps its state, and a new record starts the group again
    assert set(buffer.lanes) == {"a"}
    assert not buffer.is_current(g)
    fill(buffer, "g", 2, 1)
    assert buffer.lanes["g"] is not g and len(buffer.lanes["g"].ready) == 1
