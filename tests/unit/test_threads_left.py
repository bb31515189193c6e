"""The unit suite's check for threads a test left running (tests/unit/threads_left.py)."""

from __future__ import annotations

import threading

import pytest

from tests.unit import threads_left


def test_a_thread_still_running_after_the_grace_is_named_and_one_that_ended_is_not(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threads_left, "GRACE_SECONDS", 0.2)
    before = set(threading.enumerate())
    release = threading.Event()
    stuck = threading.Thread(target=release.wait, name="stuck-test", daemon=True)
    brief = threading.Thread(target=lambda: None, name="brief-test")
    stuck.start()
    brief.start()
    try:
        assert threads_left.threads_still_running(before) == ["stuck-test"]
    finally:
        release.set()
    assert threads_left.threads_still_running(before) == []


def test_registered_objects_are_closed_once_each_at_the_end_of_the_test() -> None:
    closed: list[str] = []

    class Thing:
        def __init__(self, name: str) -> None:
            self.name = name

        def close(self) -> None:
            closed.append(self.name)
    assert threads_left.close_after_test(Thing("a")).name == "a"
    threads_left.close_after_test(Thing("b"))
    threads_left.close_registered()
    threads_left.close_registered()
    assert closed == ["b", "a"]
