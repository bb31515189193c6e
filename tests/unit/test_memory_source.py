"""The memory source: stream and queue semantics, and resuming through the daemon's
in-process checkpoints."""

from __future__ import annotations

import threading

from connectors.memory.source import MemoryQueueSource, MemorySettings, MemorySource
from esm.clock import FakeClock
from esm.interfaces import ConnectorContext
from esm.runtime.checkpoints import InProcessCheckpoints


class Listener:
    def __init__(self) -> None:
        self.assigned: list[str] = []

    def lanes_assigned(self, lanes):
        self.assigned.extend(lanes)

    def lanes_revoked(self, lanes):
        pass


def context(checkpoints=None) -> ConnectorContext:
    return ConnectorContext("m", threading.Event(), FakeClock(), checkpoints)


def test_a_new_instance_resumes_after_the_last_commit_through_checkpoints():
    # Given a memory source built from settings, with the daemon's checkpoint store
    store = InProcessCheckpoints()
    settings = MemorySettings(records=("a", "b", "c"))
    first = MemorySource(settings, context(store))
    first.open(Listener())
    records = first.poll(10, 0)
    # When it acks the first two and is replaced (reader restart, disable/enable)
    first.ack(records[:2])
    second = MemorySource(settings, context(store))
    second.open(Listener())
    # Then the new instance, with a fresh broker from the same settings, starts at "c"
    assert [r.payload["body"] for r in second.poll(10, 0)] == ["c"]


def test_without_checkpoints_a_rebuilt_source_replays_its_records():
    settings = MemorySettings(records=("a", "b"))
    first = MemorySource(settings, context())
    first.open(Listener())
    first.ack(first.poll(10, 0))
    second = MemorySource(settings, context())
    second.open(Listener())
    assert len(second.poll(10, 0)) == 2


def test_paused_lanes_yield_nothing_and_resume_where_they_were():
    source = MemorySource(MemorySettings(lanes=2, records=("a", "b", "c", "d")), context())
    listener = Listener()
    source.open(listener)
    assert listener.assigned == ["lane-0", "lane-1"]
    source.pause(["lane-0"])
    assert {r.lane for r in source.poll(10, 0)} == {"lane-1"}
    source.resume(["lane-0"])
    assert [r.payload["body"] for r in source.poll(10, 0)] == ["a", "c"]


def test_queue_source_redelivers_released_records_with_a_higher_delivery_count():
    ctx = context()
    source = MemoryQueueSource(MemorySettings(records=("a",), visibility_timeout_seconds=30), ctx)
    source.open(Listener())
    (record,) = source.poll(10, 0)
    assert source.poll(10, 0) == []  # invisible while in flight
    source.release([record], 5.0)
    ctx.clock.advance(5)  # type: ignore[attr-defined]
    (again,) = source.poll(10, 0)
    assert again.delivery_count == 2
    source.ack([again])
    ctx.clock.advance(60)  # type: ignore[attr-defined]
    assert source.poll(10, 0) == []
