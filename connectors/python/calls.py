"""Run handler calls on helper threads, so that the `python` target can enforce its timeout
(DESIGN §6): the caller waits at most `timeout_seconds` for the result. This serves
`PythonTarget.invoke`, whose callers keep no timeout of their own (tumbling windows,
redrive); the daemon's lane workers call `invoke_inline` instead and keep the timeout in
the pipeline (esm.threads.overruns), without these two hand-offs per call.

Each calling thread gets its own helper thread, kept in a thread-local, so
the common path takes no shared lock and wakes exactly one thread each way; the hand-off is
two raw locks per call rather than a pool checkout and an `Event` (measured: this is most
of the per-invocation cost at batch size 1, see tests/bench/bench_pipeline.py).

Python cannot kill a thread, so a call that overruns keeps running on its helper thread.
That thread is then abandoned: the caller gets a fresh helper for its next call instead of
waiting for it (no deadlock), and the stray thread exits when its call ends. Once
`max_abandoned` timed-out calls are still running, calls raise `InvokeError` rather than
pile up threads. A helper thread also exits when its calling thread has ended (the lane
worker pool is rebuilt on every reader restart) or when the runner is closed.
"""

from __future__ import annotations

import _thread
import queue
import threading
import weakref
from collections.abc import Callable

from esm.errors import InvokeError
from esm.records import FunctionFailed, InvokeResult

Inbox = queue.SimpleQueue["_Call | None"]


class _Call:
    """One call. `done` is released when `result` is set; `claim` decides, without a shared
    lock, whether the helper delivered the result (it acquired `claim`) or the caller gave
    up on it (the caller acquired `claim` after its wait timed out)."""

    __slots__ = ("fn", "result", "done", "claim")

    def __init__(self, fn: Callable[[], InvokeResult]) -> None:
        self.fn = fn
        self.result: InvokeResult | None = None
        self.done = _thread.allocate_lock()
        self.done.acquire()
        self.claim = _thread.allocate_lock()


class _Helper:
    """A calling thread's own helper thread. Stored only in that thread's thread-local:
    when the calling thread ends, this object is collected and its helper told to exit."""

    __slots__ = ("inbox", "__weakref__")

    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox
        weakref.finalize(self, inbox.put, None)


class CallRunner:
    """Runs calls with a timeout on per-caller helper threads; see the module docstring."""

    def __init__(self, name: str, max_abandoned: int) -> None:
        self._name = name
        self._max_abandoned = max_abandoned
        self._local = threading.local()
        self._lock = threading.Lock()  # guards the fields below; never taken per call
        self._inboxes: set[Inbox] = set()
        self._abandoned = 0
        self._started = 0
        self._closed = False

    def run(self, fn: Callable[[], InvokeResult], timeout_seconds: float) -> InvokeResult | None:
        """fn's result, or None if it did not finish within `timeout_seconds`."""
        if self._closed:
            raise InvokeError(f"{self._name}: target is closed")
        if self._abandoned >= self._max_abandoned:
            raise InvokeError(f"{self._name}: {self._abandoned} timed-out handler calls are "
                              "still running; not starting more threads")
        helper: _Helper | None = getattr(self._local, "helper", None)
        if helper is None:
            helper = self._local.helper = self._start_helper()
        call = _Call(fn)
        helper.inbox.put(call)
        if call.done.acquire(True, timeout_seconds):
            return call.result
        if not call.claim.acquire(False):  # it finished just now: the result is coming
            call.done.acquire()
            return call.result
        self._local.helper = None  # the stray call keeps that thread; use a fresh one
        with self._lock:
            self._abandoned += 1
        return None

    def close(self) -> None:
        """Idle helper threads exit now; busy ones when their call ends."""
        with self._lock:
            self._closed = True
            inboxes, self._inboxes = self._inboxes, set()
        for inbox in inboxes:
            inbox.put(None)

    def _start_helper(self) -> _Helper:
        inbox: Inbox = queue.SimpleQueue()
        with self._lock:
            if self._closed:
                raise InvokeError(f"{self._name}: target is closed")
            self._started += 1
            name = f"{self._name}-{self._started}"
            self._inboxes.add(inbox)
        threading.Thread(target=self._work, args=(inbox,), name=name, daemon=True).start()
        return _Helper(inbox)

    def _work(self, inbox: Inbox) -> None:
        try:
            while (call := inbox.get()) is not None:
                try:
                    call.result = call.fn()
                except BaseException as exc:  # noqa: BLE001 - keep the call accounted
                    call.result = FunctionFailed(type(exc).__name__, str(exc))
                if call.claim.acquire(False):
                    call.done.release()
                    continue
                with self._lock:  # the caller gave up on this call: retire the thread
                    self._abandoned -= 1
                return
        finally:
            with self._lock:
                self._inboxes.discard(inbox)
