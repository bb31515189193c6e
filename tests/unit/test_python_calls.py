"""connectors.python.calls: per-caller helper threads with a timeout (DESIGN §6)."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

from connectors.python.calls import CallRunner
from esm.errors import InvokeError
from esm.records import FunctionFailed, InvokeResult, Returned


@pytest.fixture
def runner() -> Iterator[CallRunner]:
    calls = CallRunner("esm-test", max_abandoned=4)
    yield calls
    calls.close()


def run_and_note_thread(calls: CallRunner, seen: list[threading.Thread]) -> InvokeResult | None:
    def fn() -> InvokeResult:
        seen.append(threading.current_thread())
        return Returned("ok")
    return calls.run(fn, 5.0)


def test_each_calling_thread_reuses_its_own_helper_thread(runner: CallRunner) -> None:
    # Given calls made from the test thread and from another thread
    here: list[threading.Thread] = []
    other: list[threading.Thread] = []
    run_and_note_thread(runner, here)
    run_and_note_thread(runner, here)
    caller = threading.Thread(target=run_and_note_thread, args=(runner, other))
    caller.start()
    caller.join()
    # Then one caller's calls ran on one helper, not on the caller, and callers do not share
    assert here[0] is here[1] and here[0] is not threading.current_thread()
    assert other[0] is not here[0]


def test_helper_thread_exits_when_its_calling_thread_has_ended(runner: CallRunner) -> None:
    # Given a calling thread that made one call and ended
    seen: list[threading.Thread] = []
    caller = threading.Thread(target=run_and_note_thread, args=(runner, seen))
    caller.start()
    caller.join()
    gc.collect()
    # When waiting for its helper thread / Then it exits
    seen[0].join(5.0)
    assert not seen[0].is_alive()


def test_a_timed_out_call_frees_its_thread_when_it_ends(runner: CallRunner) -> None:
    # Given a call that overruns its timeout
    release = threading.Event()
    stuck: list[threading.Thread] = []

    def hangs() -> InvokeResult:
        stuck.append(threading.current_thread())
        release.wait(10)
        return Returned("late")

    assert runner.run(hangs, 0.05) is None
    # When the next call runs / Then it gets a fresh helper and its own result
    fresh: list[threading.Thread] = []
    assert run_and_note_thread(runner, fresh) == Returned("ok")
    assert fresh[0] is not stuck[0]
    # And when the stray call ends, its thread exits
    release.set()
    stuck[0].join(5.0)
    assert not stuck[0].is_alive()


def test_a_raising_call_becomes_a_function_failure(runner: CallRunner) -> None:
    # Given a call that raises past the handler wrapper (a bug, or BaseException)
    def boom() -> InvokeResult:
        raise KeyboardInterrupt("stop")
    # When run / Then the caller gets a FunctionFailed, and the runner keeps working
    assert runner.run(boom, 5.0) == FunctionFailed("KeyboardInterrupt", "stop")
    assert run_and_note_thread(runner, []) == Returned("ok")


def test_close_stops_idle_helpers_and_refuses_calls(runner: CallRunner) -> None:
    # Given a runner with an idle helper
    seen: list[threading.Thread] = []
    run_and_note_thread(runner, seen)
    # When closed
    runner.close()
    # Then the helper exits and new calls are refused
    seen[0].join(5.0)
    assert not seen[0].is_alive()
    with pytest.raises(InvokeError, match="closed"):
        run_and_note_thread(runner, seen)
