"""The overrun watchdog: exactly one side wins a watch, and deadlines fire on time
(esm.threads.overruns). Real threads and short real deadlines."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from esm.threads.overruns import Watchdog


@pytest.fixture()
def watchdog() -> Iterator[Watchdog]:
    dog = Watchdog("esm-test-watch")
    yield dog
    dog.close()


def test_a_call_settled_before_its_deadline_is_never_taken_over(watchdog: Watchdog) -> None:
    # Given a watch with a 0.2 s deadline
    fired = threading.Event()
    watch = watchdog.arm(0.2, fired.set)
    # When the call settles at once
    settled = watch.settle()
    # Then the caller goes on, and the overrun callback never runs
    assert settled
    assert not fired.wait(0.4)


def test_a_call_past_its_deadline_is_taken_over_once(watchdog: Watchdog) -> None:
    # Given a watch with a 0.05 s deadline and a call that runs longer
    fired: list[float] = []
    started = time.monotonic()
    watch = watchdog.arm(0.05, lambda: fired.append(time.monotonic() - started))
    time.sleep(0.3)
    # When the call finally settles
    settled = watch.settle()
    # Then the watchdog took it over once, near its deadline, and the caller must not go on
    assert len(fired) == 1 and 0.05 <= fired[0] < 0.25
    assert not settled


def test_an_earlier_deadline_armed_while_the_watchdog_sleeps_fires_on_time(
        watchdog: Watchdog) -> None:
    # Given the watchdog sleeping towards a deadline 5 s away
    late = watchdog.arm(5.0, lambda: None)
    time.sleep(0.05)
    # When a watch with a 0.1 s deadline is armed
    fired = threading.Event()
    started = time.monotonic()
    watchdog.arm(0.1, fired.set)
    # Then it fires after about 0.1 s, not after the earlier sleep ends
    assert fired.wait(2.0)
    assert time.monotonic() - started < 1.0
    assert late.settle()


def test_a_failing_overrun_callback_does_not_stop_the_watchdog(watchdog: Watchdog) -> None:
    # Given a watch whose callback raises, armed before another
    def boom() -> None:
        raise RuntimeError("bad callback")
    watchdog.arm(0.02, boom)
    fired = threading.Event()
    watchdog.arm(0.1, fired.set)
    # Then the second still fires
    assert fired.wait(2.0)


def test_quick_calls_in_a_row_do_not_wake_the_watchdog_each(monkeypatch) -> None:
    # Given a watchdog whose passes are counted
    passes: list[float] = []
    dog = Watchdog("esm-test-watch")
    fire_due = dog._fire_due
    monkeypatch.setattr(dog, "_fire_due", lambda: passes.append(1) or fire_due())
    try:
        # When 300 quick calls come one after another, each settled before the watchdog
        # could look at it (1 ms apart, 50 ms deadlines)
        for _ in range(300):
            dog.arm(0.05, lambda: None).settle()
            time.sleep(0.001)
        # Then the watchdog looked about once a deadline, not once per call (a thread
        # switch each)
        assert len(passes) < 40
        # And a call that then overruns a shorter deadline is still taken over on time
        fired = threading.Event()
        watch = dog.arm(0.05, fired.set)
        assert fired.wait(2.0)
        assert not watch.settle()
    finally:
        dog.close()
