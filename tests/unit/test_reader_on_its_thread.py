"""Batches on the reader's own thread: a quick in-process function runs there once
measured, a function that waits runs on lane threads, and a batch that holds the reader up
does not stop the other lanes or the mapping's stop (esm.pipeline.dispatch,
esm.threads.placement, esm.threads.relay). Real threads, a real clock, the memory broker."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from connectors.memory.source import MemoryBroker
from esm.clock import SystemClock
from esm.records import Event, FunctionFailed, InvokeResult, Returned
from esm.threads.lane_threads import LaneThreads
from tests.unit.runtime_fakes import Rig, mapping_config


class InlineTarget:
    """Runs inline; `behaviour(call_number, bodies)` runs in each call."""

    def __init__(self, behaviour: Callable[[int, list[str]], None] = lambda n, b: None) -> None:
        self.behaviour = behaviour
        self.calls: list[tuple[str, list[str], float]] = []  # thread, bodies, when
        self._lock = threading.Lock()

    def invoke(self, event: Event, timeout_seconds: float) -> InvokeResult:
        raise AssertionError("lane workers call invoke_inline")

    def invoke_inline(self, event: Event, timeout_seconds: float) -> InvokeResult:
        bodies = [r["body"] for r in event.document["Records"]]
        with self._lock:
            self.calls.append((threading.current_thread().name, bodies, time.monotonic()))
            number = len(self.calls)
        self.behaviour(number, bodies)
        return Returned(None)

    def overrun_result(self, timeout_seconds: float) -> InvokeResult:
        return FunctionFailed("Sandbox.Timedout", "Task timed out")

    def close(self) -> None:
        pass

    def bodies(self) -> list[str]:
        return [body for _, bodies, _ in self.calls for body in bodies]


@contextmanager
def running(target: InlineTarget, lanes: int = 1, **mapping: object) -> Iterator[Rig]:
    """A mapping on lane threads with its reader running on its relay, stopped at the end."""
    broker = MemoryBroker("stream", SystemClock(), lanes)
    pool = LaneThreads("esm-lane-test")
    rig = Rig(mapping_config(**{"batch_size": 5, **mapping}), target, lanes=lanes,
              broker=broker, pool=pool)
    reader = threading.Thread(target=rig.reader.run, name="esm-mapping-test")
    reader.start()
    try:
        yield rig
    finally:
        rig.stop.set()
        reader.join(10.0)
        pool.shutdown(wait=False)
        assert not reader.is_alive(), "the reader did not stop"


def put(rig: Rig, count: int, lane: str | None = None, start: int = 0) -> list[str]:
    bodies = [json.dumps({"n": n}) for n in range(start, start + count)]
    rig.put(*bodies, lane=lane)
    return bodies


def wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_a_quick_function_runs_on_the_readers_thread_once_measured() -> None:
    # Given a no-op function and 400 records in batches of 5
    target = InlineTarget()
    with running(target) as rig:
        bodies = put(rig, 400)
        # When they are processed
        wait_for(lambda: rig.broker.committed("lane-0") == 400)
    # Then every record was invoked once, in order
    assert target.bodies() == bodies
    # And once measured, most calls ran on the reader's thread, not a lane's (a loaded
    # machine can make a run look like it waited, and send a few back to lane threads)
    threads = [thread for thread, _, _ in target.calls]
    assert all(t.startswith("esm-lane-test_") for t in threads[:4])  # measured first there
    assert threads.count("esm-reader-test") >= len(threads) // 2
    # And the metric counts exactly the batches that ran there
    assert rig.metrics.value("reader_thread_batches") == threads.count("esm-reader-test")


def test_a_function_that_waits_runs_on_lane_threads() -> None:
    # Given a function that sleeps 3 ms a call (I/O, off the CPU)
    target = InlineTarget(lambda n, bodies: time.sleep(0.003))
    with running(target) as rig:
        bodies = put(rig, 100)
        wait_for(lambda: rig.broker.committed("lane-0") == 100)
    # Then every call ran on a lane thread
    assert target.bodies() == bodies
    assert all(thread.startswith("esm-lane-test_") for thread, _, _ in target.calls)


def test_a_batch_that_holds_the_reader_up_does_not_hold_up_the_other_lane() -> None:
    # Given two lanes whose function is quick, so that batches run on the reader's thread
    release = threading.Event()

    def behaviour(number: int, bodies: list[str]) -> None:
        if json.loads(bodies[0])["n"] == 1000:  # lane 0's second load: held 1 s
            release.wait(1.0)
    target = InlineTarget(behaviour)
    with running(target, lanes=2) as rig:
        put(rig, 50, lane="lane-0")
        put(rig, 50, lane="lane-1", start=500)
        wait_for(lambda: rig.broker.committed("lane-1") == 50)
        assert target.calls[-1][0] == "esm-reader-test"
        hand_ons = rig.metrics.value("reader_hand_ons")
        # When lane 0's next batch holds the reader's thread up
        held_at = time.monotonic()
        put(rig, 5, lane="lane-0", start=1000)
        wait_for(lambda: any(b[0] == json.dumps({"n": 1000}) for _, b, _ in target.calls))
        put(rig, 50, lane="lane-1", start=2000)
        # Then lane 1 goes on meanwhile: its records are invoked and acked well within 1 s
        wait_for(lambda: rig.broker.committed("lane-1") == 100, seconds=0.8)
        assert time.monotonic() - held_at < 0.9 and not release.is_set()
        # (the reader went on on a new thread, and its metric counted that)
        assert rig.metrics.value("reader_hand_ons") >= hand_ons + 1
        # And lane 0 finishes once the call returns, nothing lost or out of order
        wait_for(lambda: rig.broker.committed("lane-0") == 55)
    lane_0 = [b for b in target.bodies() if json.loads(b)["n"] in (*range(50), *range(1000, 1005))]
    assert lane_0 == [json.dumps({"n": n}) for n in (*range(50), *range(1000, 1005))]


def test_a_mapping_stops_on_time_while_a_call_on_the_readers_thread_hangs() -> None:
    # Given a quick function whose 30th call then hangs, past its 0.5 s timeout
    hang = threading.Event()

    def behaviour(number: int, bodies: list[str]) -> None:
        if number == 30:
            hang.wait(20.0)
    target = InlineTarget(behaviour)
    broker = MemoryBroker("stream", SystemClock(), 1)
    pool = LaneThreads("esm-lane-test")
    rig = Rig(mapping_config(batch_size=5, target_timeout_seconds=0.5), target,
              broker=broker, pool=pool)
    reader = threading.Thread(target=rig.reader.run, name="esm-mapping-test")
    reader.start()
    try:
        put(rig, 200)
        wait_for(lambda: len(target.calls) >= 30)
        assert target.calls[29][0] == "esm-reader-test"  # it hangs on the reader's thread
        # When the mapping is told to stop
        stopped_at = time.monotonic()
        rig.stop.set()
        # Then the reader returns within its drain budget (1 s), the call still hanging
        reader.join(5.0)
        assert not reader.is_alive() and time.monotonic() - stopped_at < 3.0
        assert not hang.is_set()
        # And nothing that was not invoked to the end was acked
        assert rig.broker.committed("lane-0") <= 29 * 5
    finally:
        hang.set()
        pool.shutdown(wait=False)
