"""The relay: the reader's loop runs on one thread at a time, goes on on a new thread when
a call holds its thread up, and the held thread leaves the loop (esm.threads.relay). Real
threads and short real hold limits."""

from __future__ import annotations

import threading
import time

import pytest

from esm.threads.relay import Relay


def test_turns_run_on_a_thread_of_the_relays_own_until_one_returns_false() -> None:
    # Given a loop of three turns
    relay = Relay("esm-reader-test")
    threads: list[str] = []

    def turn() -> bool:
        threads.append(threading.current_thread().name)
        return len(threads) < 3

    # When it runs
    relay.run(turn)
    # Then run returned after the third turn, all run on one named thread, not the caller's
    assert threads == ["esm-reader-test"] * 3
    assert relay.threads_started == 1


def test_what_a_turn_raises_ends_the_loop_and_is_raised_by_run() -> None:
    relay = Relay("esm-reader-test")

    def turn() -> bool:
        raise ValueError("source gone")

    with pytest.raises(ValueError, match="source gone"):
        relay.run(turn)


def test_a_quick_call_keeps_the_loop_on_its_thread() -> None:
    # Given turns that each make a call well within the hold limit
    relay = Relay("esm-reader-test", hold_seconds=0.5, on_hand_on=lambda: calls.append(0))
    idents: set[int] = set()
    calls = []

    def turn() -> bool:
        idents.add(threading.get_ident())
        relay.call(calls.append, 1)
        return len(calls) < 50

    relay.run(turn)
    # Then the loop never moved
    assert calls == [1] * 50 and len(idents) == 1 and relay.threads_started == 1


def test_a_call_that_holds_the_thread_up_hands_the_loop_on_and_the_held_thread_leaves() -> None:
    # Given a loop whose first turn makes a call that takes 0.3 s, past a 0.05 s hold limit
    hand_ons: list[bool] = []
    relay = Relay("esm-reader-test", hold_seconds=0.05,
                  on_hand_on=lambda: hand_ons.append(call_returned.is_set()))
    turns: list[tuple[int, float]] = []
    went_on_after_the_call = []
    call_returned = threading.Event()
    started = time.monotonic()

    def slow() -> None:
        time.sleep(0.3)
        call_returned.set()

    def turn() -> bool:
        turns.append((threading.get_ident(), time.monotonic() - started))
        if len(turns) == 1:
            relay.call(slow)
            went_on_after_the_call.append(True)  # must never run: the loop went on without it
            return True
        time.sleep(0.01)
        return not call_returned.is_set() or len(turns) < 40

    # When it runs
    relay.run(turn)
    # Then the second turn ran on a new thread soon after the hold limit, while the call ran
    first_thread, _ = turns[0]
    second_thread, second_at = turns[1]
    assert second_thread != first_thread and 0.05 <= second_at < 0.25
    # And every later turn ran on that thread, and the held thread left the loop
    assert {ident for ident, _ in turns[1:]} == {second_thread}
    assert went_on_after_the_call == [] and relay.threads_started == 2
    # And the hand-on was told once, while the call was still held up
    assert hand_ons == [False]


def test_a_call_that_raises_after_the_loop_went_on_does_not_end_the_loop() -> None:
    # Given a call that fails after holding its thread past the hold limit
    relay = Relay("esm-reader-test", hold_seconds=0.02)
    turns = []
    failed = threading.Event()

    def fails_late() -> None:
        time.sleep(0.1)
        failed.set()
        raise RuntimeError("late failure")

    def turn() -> bool:
        turns.append(1)
        if len(turns) == 1:
            relay.call(fails_late)
        time.sleep(0.005)
        return not (failed.is_set() and len(turns) > 5)

    # When the loop runs: Then it ends when its turns say so, not with the late failure
    relay.run(turn)
    assert failed.is_set() and len(turns) > 5


def test_outside_a_running_loop_a_call_just_calls() -> None:
    relay = Relay("esm-reader-test", hold_seconds=0.01)
    seen = []
    relay.call(lambda: (time.sleep(0.05), seen.append(threading.get_ident())))
    assert seen == [threading.get_ident()] and relay.threads_started == 0
