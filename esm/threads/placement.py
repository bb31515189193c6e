"""Where a mapping's next batches run: on the reader's own thread, or on lane threads.

A lane thread pays for itself only while a batch spends time off the GIL: then the reader
reads and settles, and other lanes' functions run, meanwhile. A batch that holds the GIL
throughout (a quick in-process handler) gains nothing from another thread and pays for
the hand-offs (esm.threads.relay). So every batch's run is measured, on whichever thread,
as wall time and this thread's CPU time: their difference is the time the run waited
(I/O, sleeps, retry backoff, the rate limit, a lock). Batches run on the reader while the
recent runs were short and barely waited:

- the average wait (a moving average over about the last eight runs) is under
  `MAX_WAIT_SECONDS`, about what the two hand-offs would cost;
- the average run is under `MAX_RUN_SECONDS`, far below the relay's hold limit, so that
  a usual run never moves the reader to a new thread.

Until the first runs are measured, batches go to lane threads. A run that overran its
timeout counts as a long wait. Only inline targets (the python target) ever run on the
reader; runs are recorded from several threads without a lock (a lost update of an
average only delays a switch by a batch).
"""

from __future__ import annotations

MAX_WAIT_SECONDS = 0.0001
MAX_RUN_SECONDS = 0.005
# The weight of the newest run in the moving averages.
_NEWEST = 1 / 8
_WARM_UP_RUNS = 4


class Placement:
    """Measured runs of one mapping's batches, and where the next ones go."""

    __slots__ = ("_allowed", "_runs", "_run_seconds", "_wait_seconds")

    def __init__(self, allowed: bool) -> None:
        self._allowed = allowed  # the target can run on the caller's thread
        self._runs = 0
        self._run_seconds = 0.0
        self._wait_seconds = 0.0

    def on_reader(self) -> bool:
        """Whether the next batches run on the reader's thread."""
        return (self._allowed and self._runs >= _WARM_UP_RUNS
                and self._wait_seconds < MAX_WAIT_SECONDS
                and self._run_seconds < MAX_RUN_SECONDS)

    def record(self, wall_seconds: float, cpu_seconds: float) -> None:
        """One batch's run: wall time from start to its last settlement, and the CPU time
        of the thread that ran it over the same span."""
        wait = max(0.0, wall_seconds - cpu_seconds)
        if self._runs < _WARM_UP_RUNS:  # the first runs set the averages outright
            self._runs += 1
            weight = 1.0 / self._runs
        else:
            weight = _NEWEST
        self._run_seconds += (wall_seconds - self._run_seconds) * weight
        self._wait_seconds += (wait - self._wait_seconds) * weight

    def overran(self, seconds: float) -> None:
        """A run on the reader whose call outlived its timeout (taken over)."""
        self.record(seconds, 0.0)
