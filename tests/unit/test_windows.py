"""Tumbling windows at the reader (ESM-SPEC §2.5, checklist 63): the AWS window fields,
state passed from invoke to invoke, the final invoke, early termination at 1 MB, a
response without state, and a restart mid-window (the state survives)."""

from __future__ import annotations

import json
import threading
from typing import Any

from esm.records import Event, FunctionFailed, InvokeResult, Returned
from tests.unit.runtime_fakes import Rig, mapping_config

WINDOW = 60


class WindowTarget:
    """A handler in AWS's tumbling-window style: sums `n` over the window's records."""

    def __init__(self, respond: Any = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.respond = respond or sum_state
        self._lock = threading.Lock()

    def invoke(self, event: Event, timeout_seconds: float) -> InvokeResult:
        document = dict(event.document)
        with self._lock:
            self.events.append(document)
        try:
            return Returned(self.respond(document))
        except Exception as exc:
            return FunctionFailed(type(exc).__name__, str(exc))

    def close(self) -> None:
        pass

    def finals(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["isFinalInvokeForWindow"]]


def sum_state(event: dict[str, Any]) -> dict[str, Any]:
    state = dict(event["state"] or {})
    state["sum"] = state.get("sum", 0) + sum(json.loads(r["body"])["n"]
                                             for r in event["Records"])
    state["count"] = state.get("count", 0) + len(event["Records"])
    return {"state": state, "batchItemFailures": []}


def windowed(**overrides: Any) -> Any:
    return mapping_config(tumbling_window_in_seconds=WINDOW, batch_size=2, **overrides)


def put(rig: Rig, *ns: int) -> None:
    for n in ns:
        rig.put({"n": n}, lane="lane-0")


def test_records_of_a_window_carry_its_state_and_the_final_invoke_comes_after_its_end(
) -> None:
    # Given five records arriving in one 60 s window
    target = WindowTarget()
    rig = Rig(windowed(), target)
    put(rig, 1, 2, 3, 4, 5)
    # When they are processed, then the clock passes the window's end
    rig.run_until_quiet()
    assert target.finals() == []
    rig.clock.advance(WINDOW)
    rig.run_until_quiet()
    # Then each invoke carried the AWS fields and the state so far, and one final invoke
    # with no records carried the whole window's state
    first = target.events[0]
    assert first["window"] == {"start": "2023-11-14T22:13:00Z", "end": "2023-11-14T22:14:00Z"}
    assert first["state"] == {} and first["shardId"] == "lane-0"
    assert first["isFinalInvokeForWindow"] is False and first["isWindowTerminatedEarly"] is False
    assert "eventSourceARN" in first
    assert [e["state"].get("count", 0) for e in target.events] == [0, 2, 4, 5]
    [final] = target.finals()
    assert final["Records"] == [] and final["state"] == {"sum": 15, "count": 5}
    assert final["isWindowTerminatedEarly"] is False
    assert rig.broker.committed("lane-0") == 5
    # And the window is saved as closed: it is not finalised again
    rig.clock.advance(WINDOW)
    rig.run_until_quiet()
    assert len(target.finals()) == 1


def test_a_record_of_the_next_window_finalises_the_previous_one_first() -> None:
    target = WindowTarget()
    rig = Rig(windowed(), target)
    put(rig, 1, 2)
    rig.run_until_quiet()
    rig.clock.advance(WINDOW)
    put(rig, 10)
    rig.run_until_quiet()
    kinds = [(e["isFinalInvokeForWindow"], e["window"]["start"]) for e in target.events]
    assert kinds == [(False, "2023-11-14T22:13:00Z"), (True, "2023-11-14T22:13:00Z"),
                     (False, "2023-11-14T22:14:00Z")]
    assert target.events[-1]["state"] == {}


def test_state_over_1_mb_ends_the_window_early_and_the_rest_starts_afresh() -> None:
    # Given a handler whose state grows past 1 MB on its first invoke
    calls: list[int] = []
    def respond(event: dict[str, Any]) -> dict[str, Any]:
        calls.append(1)
        if event["isFinalInvokeForWindow"]:
            return {"state": {}}
        big = "x" * (1024 * 1024 + 10) if len(calls) == 1 else ""
        return {"state": {"blob": big, "seen": len(event["Records"])}}
    target = WindowTarget(respond)
    rig = Rig(windowed(), target)
    put(rig, 1, 2, 3, 4)
    # When the records are processed (all within the window's time)
    rig.run_until_quiet()
    # Then a final invoke marked terminated early followed the big state, and the next
    # batch of the same time range started with empty state
    flags = [(e["isFinalInvokeForWindow"], e["isWindowTerminatedEarly"]) for e in target.events]
    assert flags == [(False, False), (True, True), (False, False)]
    assert len(target.events[1]["state"]["blob"]) > 1024 * 1024
    assert target.events[2]["state"] == {}
    assert rig.broker.committed("lane-0") == 4


def test_a_response_without_state_fails_the_batch_and_it_is_retried_with_the_same_state(
) -> None:
    # Given a handler that forgets `state` on its second invoke, once
    dropped: list[int] = []
    def respond(event: dict[str, Any]) -> dict[str, Any]:
        if event["state"] and not dropped:
            dropped.append(1)
            return {"batchItemFailures": []}
        return sum_state(event)
    target = WindowTarget(respond)
    rig = Rig(windowed(maximum_retry_attempts=3), target)
    put(rig, 1, 2, 3, 4)
    rig.run_until_quiet()
    rig.clock.advance(WINDOW)
    rig.run_until_quiet()
    # Then the failed invoke was retried with the state it had, and nothing was counted twice
    states = [e["state"] for e in target.events if not e["isFinalInvokeForWindow"]]
    assert states == [{}, {"sum": 3, "count": 2}, {"sum": 3, "count": 2}]
    assert target.finals()[0]["state"] == {"sum": 10, "count": 4}
    assert rig.metrics.value("function_errors") == 1
    assert rig.broker.committed("lane-0") == 4


def test_a_restart_mid_window_resumes_the_window_with_its_state() -> None:
    # Given a daemon that processed part of a window, then stopped
    first = Rig(windowed(), WindowTarget())
    put(first, 1, 2, 3, 4)
    first.run_until_quiet()
    # When a new daemon over the same broker takes the lane and more records arrive
    target = WindowTarget()
    second = Rig(windowed(), target, broker=first.broker)
    put(second, 5, 6)
    second.run_until_quiet()
    second.clock.advance(WINDOW)
    second.run_until_quiet()
    # Then it continued from the saved state, and the final invoke covers the whole window
    assert target.events[0]["state"] == {"sum": 10, "count": 4}
    assert target.finals()[0]["state"] == {"sum": 21, "count": 6}


def test_records_already_in_a_saved_state_are_not_folded_in_twice_after_a_crash() -> None:
    # Given a window document saved past the checkpoint (a crash between the two writes):
    # records 0 and 1 are in the state, the lane's checkpoint is still at 0
    rig = Rig(windowed(), WindowTarget())
    start = (rig.clock.now() // WINDOW) * WINDOW
    rig.broker.windows["lane-0"] = json.dumps({
        "start": start, "end": start + WINDOW, "state": {"sum": 3, "count": 2},
        "lastPosition": "1"})
    put(rig, 1, 2, 3, 4)
    target = WindowTarget()
    again = Rig(windowed(), target, broker=rig.broker)
    # When the records are delivered again
    again.run_until_quiet()
    again.clock.advance(WINDOW)
    again.run_until_quiet()
    # Then the two already folded in are acked without an invoke, the rest are added once
    invoked = [r["body"] for e in target.events for r in e["Records"]]
    assert invoked == ['{"n": 3}', '{"n": 4}']
    assert target.finals()[0]["state"] == {"sum": 10, "count": 4}
    assert again.broker.committed("lane-0") == 4



def test_resharding_closes_the_window_with_its_final_invoke_before_the_shard_is_finished(
) -> None:
    # Given an open window on a lane that was read to its end (a closed shard)
    target = WindowTarget()
    rig = Rig(windowed(), target)
    put(rig, 1, 2, 3)
    rig.run_until_quiet()
    rig.executor.submit = lambda fn, *args: fn(*args)  # type: ignore[method-assign]
    # When the source says the lane is ending, long before the window's end
    rig.reader.lane_ending("lane-0")
    # Then the final invoke ran at once, with the window's whole state, and the window is
    # saved as closed before the source finishes the shard
    [final] = target.finals()
    assert final["state"] == {"sum": 6, "count": 3} and final["Records"] == []
    assert json.loads(rig.broker.windows["lane-0"])["closed"] is True


def test_a_final_invoke_that_keeps_failing_is_given_up_after_the_retry_attempts() -> None:
    # Given a handler whose final invokes always fail, and 2 retry attempts
    def respond(event: dict[str, Any]) -> dict[str, Any]:
        if event["isFinalInvokeForWindow"]:
            raise RuntimeError("final failed")
        return sum_state(event)
    target = WindowTarget(respond)
    rig = Rig(windowed(maximum_retry_attempts=2), target)
    put(rig, 1, 2)
    rig.run_until_quiet()
    # When the window ends and the next window's records arrive
    rig.clock.advance(WINDOW)
    put(rig, 3)
    rig.run_until_quiet()
    # Then the final was tried 1 + 2 times, then the window dropped and the lane moved on
    assert len(target.finals()) == 3
    assert target.events[-1]["Records"][0]["body"] == '{"n": 3}'
    assert target.events[-1]["state"] == {}
    assert rig.broker.committed("lane-0") == 3
