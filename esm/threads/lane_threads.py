"""The threads lane workers run on: a pool like `ThreadPoolExecutor`, plus taking a batch
over from a thread whose call overran (`esm.threads.overruns`).

When an inline call overruns, `watch` detaches the stuck thread (its call runs on, but the
thread is no longer the pool's: `shutdown` does not wait for it, and it ends when the call
returns) and runs the overrun callback, which carries the batch on with the timeout as its
outcome, on another thread of the pool. So a hung function never holds up a lane, a
reader restart or the daemon's stop, as with the helper-thread timeout it replaces.

Each thread has its own inbox and waits on it alone: `submit` wakes exactly one thread
(the last one to go idle, whose stack is warm) and takes no shared condition, which costs
less per batch than the executor's work queue, futures and semaphore.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from esm.threads.overruns import TakenOver, Watch, Watchdog

log = logging.getLogger(__name__)

Job = tuple[Callable[..., None], tuple[Any, ...]]


class _Worker:
    __slots__ = ("inbox", "detached")

    def __init__(self) -> None:
        self.inbox: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self.detached = False


class LaneThreads:
    """Runs lane-worker jobs on reusable threads; see the module docstring."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()  # given a job and not done with it
        self._by_thread: dict[int, _Worker] = {}  # thread id → its worker, while it lives
        self._all_idle = threading.Condition(self._lock)
        self._started = 0
        self._closed = False
        self._watchdog = Watchdog(f"{name}-watch")

    def submit(self, fn: Callable[..., None], *args: Any) -> None:
        """Run `fn(*args)` on an idle thread, or a new one. Exceptions are logged; callers
        that must see them catch them in `fn`. After `shutdown`, jobs still run (an
        overrun's continuation must finish its batch), on a thread of their own."""
        with self._lock:
            worker = self._idle.pop() if self._idle and not self._closed else None
            if worker is None:
                worker = _Worker()
                self._started += 1
                threading.Thread(target=self._work, args=(worker,), daemon=True,
                                 name=f"{self._name}_{self._started}").start()
            self._busy.add(worker)
        worker.inbox.put((fn, args))

    def watch(self, seconds: float, on_overrun: Callable[[], None]) -> Watch:
        """Arm a deadline on the calling lane thread's current call: if it passes before
        `Watch.settle()`, this thread is detached and `on_overrun()` runs on another lane
        thread. The caller raises `TakenOver` when `settle()` returns False."""
        ident = threading.get_ident()
        return self._watchdog.arm(seconds, lambda: self._take_over(ident, on_overrun))

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Idle threads end; with `wait`, returns when no attached thread runs a job (a
        detached thread's overrunning call is not waited for). `cancel_futures` is accepted
        for the executor's signature: jobs are never queued here, each has its thread."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            for worker in idle:
                worker.inbox.put(None)
            while wait and self._busy:
                self._all_idle.wait()
        self._watchdog.close()

    def _take_over(self, ident: int, on_overrun: Callable[[], None]) -> None:
        with self._lock:
            stuck = self._by_thread.get(ident)
            if stuck is not None:
                stuck.detached = True
                self._busy.discard(stuck)
            if not self._busy:
                self._all_idle.notify_all()
        self.submit(on_overrun)

    def _work(self, worker: _Worker) -> None:
        ident = threading.get_ident()
        with self._lock:
            self._by_thread[ident] = worker
        try:
            self._serve(worker)
        finally:
            with self._lock:
                del self._by_thread[ident]

    def _serve(self, worker: _Worker) -> None:
        while (job := worker.inbox.get()) is not None:
            fn, args = job
            try:
                fn(*args)
            except TakenOver:
                pass  # the batch went on elsewhere; this thread is detached
            except BaseException:  # noqa: BLE001 - a pool thread must not die silently
                log.exception("%s: a lane job failed", self._name)
            with self._lock:
                if worker.detached:
                    return
                self._busy.discard(worker)
                if not self._busy:
                    self._all_idle.notify_all()
                if self._closed:
                    return
                self._idle.append(worker)
