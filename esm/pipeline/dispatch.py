"""Running the reader's closed batches through the lane worker, on lane threads or on the
reader's own thread, and carrying their settlements back to the reader.

Where a batch runs is `Placement`'s call (esm.threads.placement). A batch sent to run
here waits until the reader's turn has finished with its state (`run_here`), then runs
under the relay's hold limit: if it holds the reader's thread up, the reader's loop goes on
on a new thread, and this thread finishes the batch as a lane thread would, passes the
turn's later batches to lane threads and leaves the loop (esm.threads.relay).

Either way, settlements go through the same queue, so the reader applies them the same way
(DESIGN §2: only the reader touches the source).
"""

from __future__ import annotations

import logging
import queue
import time
from concurrent.futures import Executor

from esm.ops.metrics import MappingMetrics
from esm.pipeline.lane_buffer import Lane
from esm.pipeline.lane_worker import LaneWorker, Settle
from esm.records import Batch, Settlement
from esm.threads.lane_threads import LaneThreads
from esm.threads.overruns import TakenOver
from esm.threads.placement import Placement
from esm.threads.relay import HandedOn, Relay

log = logging.getLogger(__name__)


class Dispatcher:
    """Runs one mapping's batches; see the module docstring."""

    def __init__(self, *, mapping_name: str, worker: LaneWorker, pool: Executor | LaneThreads,
                 relay: Relay, metrics: MappingMetrics) -> None:
        self.mapping_name = mapping_name
        self.metrics = metrics
        self.worker = worker
        self.pool = pool
        # Inline targets run on the calling thread only where a stuck one can be taken over.
        self._threads = pool if isinstance(pool, LaneThreads) else None
        self.placement = Placement(self._threads is not None
                                   and getattr(worker.invoker, "runs_inline", False))
        self._relay = relay
        self.settlements: queue.SimpleQueue[tuple[Lane, Settlement]] = queue.SimpleQueue()
        self.crashed: BaseException | None = None
        self._here: list[tuple[Lane, Batch]] = []

    def send(self, lane: Lane, batch: Batch, here: bool) -> None:
        """Run `batch` on a lane thread now, or with `here`, at this turn's `run_here`."""
        if here:
            self._here.append((lane, batch))
        else:
            self.pool.submit(self._run, lane, batch)

    def run_here(self) -> bool:
        """Run the batches sent here this turn, in order, on this (the reader's) thread;
        True if there were any. Raises HandedOn when the reader's loop went on on another
        thread meanwhile; the batches not yet started went to lane threads first."""
        batches, self._here = self._here, []
        for done, (lane, batch) in enumerate(batches):
            try:
                self._relay.call(self._run_here, lane, batch)
            except HandedOn:
                self.metrics.count("reader_thread_batches", done + 1)
                for later in batches[done + 1:]:
                    self.pool.submit(self._run, *later)
                raise
        self.metrics.count("reader_thread_batches", len(batches))
        return bool(batches)

    def _run(self, lane: Lane, batch: Batch) -> None:
        """On a lane thread."""
        self._process(lane, batch, here=False)

    def _run_here(self, lane: Lane, batch: Batch) -> None:
        self._process(lane, batch, here=True)

    def _process(self, lane: Lane, batch: Batch, here: bool) -> None:
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            self.worker.process(batch, self._settle_for(lane), self._threads,
                                self._worker_crashed)
        except TakenOver:  # the call overran: the batch went on on another lane thread
            if not here:
                raise  # LaneThreads ends this thread
            self.placement.overran(time.perf_counter() - started)
            return
        except BaseException as exc:
            self._worker_crashed(exc)
            return
        self.placement.record(time.perf_counter() - started, time.thread_time() - cpu)

    def _settle_for(self, lane: Lane) -> Settle:
        settlements = self.settlements

        def settle(settlement: Settlement) -> None:
            settlements.put((lane, settlement))
        return settle

    def _worker_crashed(self, exc: BaseException) -> None:
        """Reported to the reader, which restarts the mapping."""
        log.error("mapping %s: lane worker crashed", self.mapping_name, exc_info=exc)
        self.crashed = exc
