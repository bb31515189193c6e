"""LaneBuffer back-pressure: a lane with a batch waiting is paused, and the whole buffer
pauses every lane at its bound (DESIGN §2)."""

from __future__ import annotations

from collections.abc import Collection

from esm.batching import BatchLimits
from esm.lane_buffer import LaneBuffer
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
                        max_records=max_records, max_bytes=1 << 30)
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
