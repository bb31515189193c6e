"""Where batches run: on the reader's thread while recent runs were short and barely
waited, else on lane threads (esm.threads.placement)."""

from __future__ import annotations

from esm.threads.placement import Placement


def quick(placement: Placement, runs: int = 8) -> None:
    for _ in range(runs):
        placement.record(0.0002, 0.0002)  # 200 us, all of it on the CPU


def test_batches_start_on_lane_threads_and_move_to_the_reader_once_runs_are_quick() -> None:
    placement = Placement(allowed=True)
    assert not placement.on_reader()  # nothing measured yet
    quick(placement, 3)
    assert not placement.on_reader()  # still warming up
    quick(placement, 1)
    assert placement.on_reader()


def test_runs_that_wait_off_the_cpu_go_back_to_lane_threads() -> None:
    # Given quick runs on the reader
    placement = Placement(allowed=True)
    quick(placement)
    # When the function starts waiting 2 ms a call (I/O)
    for _ in range(3):
        placement.record(0.0022, 0.0002)
    # Then batches go to lane threads, where the waits overlap
    assert not placement.on_reader()
    # And come back once the waits are gone
    quick(placement, 30)
    assert placement.on_reader()


def test_long_runs_go_to_lane_threads_even_when_all_cpu() -> None:
    placement = Placement(allowed=True)
    for _ in range(8):
        placement.record(0.02, 0.02)  # 20 ms of CPU a batch: would hold the reader up
    assert not placement.on_reader()


def test_an_overrun_sends_batches_to_lane_threads() -> None:
    placement = Placement(allowed=True)
    quick(placement)
    placement.overran(3.0)
    assert not placement.on_reader()


def test_a_target_that_cannot_run_inline_never_runs_on_the_reader() -> None:
    placement = Placement(allowed=False)
    quick(placement, 20)
    assert not placement.on_reader()
