"""LaneThreads: jobs on reused threads, shutdown waits for them, and an overrun moves the
batch to another thread while shutdown stops waiting for the stuck one
(esm.threads.lane_threads)."""

from __future__ import annotations

import threading
import time

from esm.threads.lane_threads import LaneThreads
from esm.threads.overruns import TakenOver


def test_jobs_run_one_after_another_reuse_one_thread() -> None:
    # Given a pool
    threads = LaneThreads("esm-lane-test")
    seen: list[str] = []
    done = threading.Event()
    # When jobs are submitted one after the other
    for _ in range(5):
        done.clear()
        threads.submit(lambda: (seen.append(threading.current_thread().name), done.set()))
        assert done.wait(2.0)
        time.sleep(0.01)  # the thread goes back to idle
    threads.shutdown()
    # Then they all ran on the same lane thread, named for the log's mapping field
    assert len(set(seen)) == 1 and seen[0].startswith("esm-lane-test_")


def test_shutdown_waits_for_a_running_job() -> None:
    # Given a job that takes 0.2 s
    threads = LaneThreads("esm-lane-test")
    finished = threading.Event()
    threads.submit(lambda: (time.sleep(0.2), finished.set()))
    # When the pool shuts down
    threads.shutdown(wait=True)
    # Then the job had finished by then
    assert finished.is_set()


def test_an_overrun_continues_elsewhere_and_shutdown_does_not_wait_for_the_stuck_thread(
        ) -> None:
    # Given a job whose call hangs past a 0.05 s watch
    threads = LaneThreads("esm-lane-test")
    release = threading.Event()
    continued_on: list[str] = []
    continued = threading.Event()
    stuck_result: list[str] = []
    job_thread: list[str] = []

    def job() -> None:
        job_thread.append(threading.current_thread().name)
        watch = threads.watch(0.05, lambda: (
            continued_on.append(threading.current_thread().name), continued.set()))
        release.wait(5.0)  # the hung call
        if not watch.settle():
            stuck_result.append("taken over")
            raise TakenOver
        stuck_result.append("went on")

    threads.submit(job)
    # When the deadline passes
    assert continued.wait(2.0)
    # Then the continuation ran on another thread while the call still hangs
    assert continued_on and continued_on[0] != job_thread[0] and not stuck_result
    assert continued_on[0].startswith("esm-lane-test_")
    # And shutdown returns without waiting for the hung call
    started = time.monotonic()
    threads.shutdown(wait=True)
    assert time.monotonic() - started < 1.0
    # And when the call finally returns, it learns it was taken over
    release.set()
    deadline = time.monotonic() + 2.0
    while not stuck_result and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stuck_result == ["taken over"]


def test_a_failing_job_leaves_its_thread_serving() -> None:
    # Given a pool whose first job raises
    threads = LaneThreads("esm-lane-test")
    threads.submit(lambda: 1 / 0)
    ran = threading.Event()
    # When another job is submitted
    threads.submit(ran.set)
    # Then it runs
    assert ran.wait(2.0)
    threads.shutdown()
