"""Inline targets under the lane worker: the function runs on the lane thread, and an
overrun is taken over by another lane thread with Lambda's timeout as the outcome; the
stuck call's late result is dropped (esm.pipeline.invoker, esm.threads.overruns)."""

from __future__ import annotations

import json
import queue
import threading
import time
from typing import Any

import esm.pipeline.invoker as invoker_module
from esm.pipeline.invoker import Takeover
from esm.records import (
    Batch,
    Event,
    FunctionError,
    FunctionFailed,
    InvokeFailure,
    InvokeResult,
    Returned,
    Settlement,
    Success,
)
from esm.threads.lane_threads import LaneThreads
from tests.unit.runtime_fakes import Rig, mapping_config


class HangingInlineTarget:
    """Runs inline; the calls listed in `hang_calls` hang until `release` is set."""

    def __init__(self, hang_calls: tuple[int, ...] = (1,)) -> None:
        self.hang_calls = hang_calls
        self.calls: list[str] = []  # thread name of each call
        self.release = threading.Event()
        self.late_returns = 0

    def invoke(self, event: Event, timeout_seconds: float) -> InvokeResult:
        raise AssertionError("lane workers on lane threads call invoke_inline")

    def invoke_inline(self, event: Event, timeout_seconds: float) -> InvokeResult:
        self.calls.append(threading.current_thread().name)
        if len(self.calls) in self.hang_calls:
            self.release.wait(10.0)
            self.late_returns += 1
            return Returned({"batchItemFailures": []})
        return Returned(None)

    def overrun_result(self, timeout_seconds: float) -> InvokeResult:
        return FunctionFailed("Sandbox.Timedout", f"Task timed out after {timeout_seconds:.2f} "
                                                  "seconds")

    def close(self) -> None:
        self.release.set()


def polled_batch(rig: Rig, count: int) -> Batch:
    rig.put(*[json.dumps({"id": i}) for i in range(count)])
    records = rig.source.poll(count, 0)
    return Batch(records[0].lane, tuple(records))


def run_on_lane_threads(rig: Rig, batch: Batch, threads: LaneThreads
                        ) -> tuple[queue.SimpleQueue[tuple[str, Settlement]], list[Any]]:
    settled: queue.SimpleQueue[tuple[str, Settlement]] = queue.SimpleQueue()
    crashes: list[Any] = []
    threads.submit(rig.worker.process, batch,
                   lambda s: settled.put((threading.current_thread().name, s)),
                   threads, crashes.append)
    return settled, crashes


def test_an_overrunning_inline_call_is_retried_on_another_thread_and_its_late_result_dropped(
        ) -> None:
    # Given a stream mapping with a 0.1 s timeout whose first call hangs
    target = HangingInlineTarget(hang_calls=(1,))
    rig = Rig(mapping_config(batch_size=3, target_timeout_seconds=0.1), target)
    batch = polled_batch(rig, 3)
    threads = LaneThreads("esm-lane-test")
    # When a lane worker processes the batch on the lane threads
    settled, crashes = run_on_lane_threads(rig, batch, threads)
    thread, settlement = settled.get(timeout=5.0)
    # Then the batch is retried after the timeout, on another thread, and acked once
    assert settlement.finished and settlement.ack == batch.records
    assert len(target.calls) == 2 and target.calls[0] != target.calls[1]
    assert thread == target.calls[1]
    assert rig.metrics.value("function_errors") == 1 and rig.metrics.value("retries") == 1
    # And when the hung call returns at last, nothing more is settled and nothing crashed
    target.release.set()
    deadline = time.monotonic() + 2.0
    while target.late_returns == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)
    assert target.late_returns == 1
    assert settled.empty() and not crashes
    threads.shutdown()


def test_an_inline_call_that_keeps_overrunning_ends_as_the_policy_says(
        ) -> None:
    # Given a queue mapping (0.1 s timeout) whose every call hangs, retried twice
    target = HangingInlineTarget(hang_calls=(1, 2, 3))
    rig = Rig(mapping_config("queue", batch_size=2, target_timeout_seconds=0.1,
                             maximum_retry_attempts=2), target)
    batch = polled_batch(rig, 2)
    threads = LaneThreads("esm-lane-test")
    # When a lane worker processes the batch
    settled, crashes = run_on_lane_threads(rig, batch, threads)
    outcomes = []
    while not (outcomes and outcomes[-1].finished):
        outcomes.append(settled.get(timeout=5.0)[1])
    # Then each attempt timed out and the batch was handed back once, finished
    assert len(target.calls) == len(set(target.calls)) >= 1
    assert rig.metrics.value("function_errors") == len(target.calls)
    assert [o.finished for o in outcomes].count(True) == 1
    assert outcomes[-1].release == batch.records or outcomes[-1].ack == batch.records
    target.release.set()
    threads.shutdown()
    assert not crashes


def test_while_too_many_calls_are_stuck_invocations_fail_without_calling(
        monkeypatch: Any) -> None:
    # Given an invoker that allows one stuck call, and a first call that hangs
    monkeypatch.setattr(invoker_module, "MAX_STUCK_CALLS", 1)
    target = HangingInlineTarget(hang_calls=(1,))
    rig = Rig(mapping_config(batch_size=3, target_timeout_seconds=0.1), target)
    batch = polled_batch(rig, 3)
    threads = LaneThreads("esm-lane-test")
    results: queue.SimpleQueue[Any] = queue.SimpleQueue()
    resumed: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def invoke() -> None:
        results.put(rig.worker.invoker.invoke(batch, Takeover(threads.watch, resumed.put)))

    threads.submit(invoke)
    assert isinstance(resumed.get(timeout=5.0), FunctionError)  # taken over: Sandbox.Timedout
    # When the batch is invoked again while that call still hangs
    threads.submit(invoke)
    refused = results.get(timeout=5.0)
    # Then it is an invoke error naming the stuck calls, and the function was not called
    assert isinstance(refused, InvokeFailure) and "still running" in refused.reason
    assert len(target.calls) == 1
    # And once the stuck call returns, invocations call the function again
    target.release.set()
    deadline = time.monotonic() + 2.0
    while target.late_returns == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)
    threads.submit(invoke)
    assert isinstance(results.get(timeout=5.0), Success)
    assert len(target.calls) == 2 and results.empty()
    threads.shutdown()


class Halt(BaseException):
    """Not an Exception: what a connector bug handler must not swallow."""


class HaltingInlineTarget(HangingInlineTarget):
    def invoke_inline(self, event: Event, timeout_seconds: float) -> InvokeResult:
        self.calls.append(threading.current_thread().name)
        raise Halt("stop here")


def test_an_inline_call_ending_in_a_base_exception_is_never_taken_over_later() -> None:
    # Given an inline target whose call raises a BaseException, under a 0.1 s timeout
    target = HaltingInlineTarget()
    rig = Rig(mapping_config(batch_size=3, target_timeout_seconds=0.1), target)
    batch = polled_batch(rig, 3)
    threads = LaneThreads("esm-lane-test")
    # When a lane worker processes the batch, and the deadline passes
    settled: queue.SimpleQueue[Settlement] = queue.SimpleQueue()
    crashes: list[BaseException] = []

    def job() -> None:
        try:
            rig.worker.process(batch, settled.put, threads, crashes.append)
        except Halt as exc:
            crashes.append(exc)

    threads.submit(job)
    time.sleep(0.4)
    # Then the batch finished once, the exception reached the caller, and no overrun
    # continuation invoked the batch again
    finished = [s for s in iter_queue(settled) if s.finished]
    assert len(finished) == 1
    assert [type(c) for c in crashes] == [Halt]
    assert len(target.calls) == 1
    threads.shutdown()


def iter_queue(q: queue.SimpleQueue[Settlement]) -> list[Settlement]:
    items = []
    while not q.empty():
        items.append(q.get_nowait())
    return items
