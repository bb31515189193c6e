"""A lane worker takes one batch and sees it through to the end: screen, invoke, apply the
failure policy's steps (retry in place, bisect, dead-letter), and hand every settlement
back to the reader. It owns the lane until it returns, so a lane never has two batches in
flight and records keep their order (DESIGN §2, ESM-SPEC §4.3).

If the daemon stops while a retry waits or a notice cannot be written, the worker gives up
on what is left: those records are neither acked nor released, so the broker delivers
them again later. Nothing is lost; at most they are processed twice (ESM-SPEC §7).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from esm.failures.dead_letter import DeadLetterer
from esm.failures.policy import FailurePolicy
from esm.interfaces import Clock
from esm.ops.logs import log_context
from esm.ops.metrics import MappingMetrics
from esm.pipeline.invoker import Invoker, Oversized, Takeover
from esm.protection.breaker import Admission, Breaker
from esm.protection.rate_limit import RateLimiter
from esm.records import (
    Ack,
    Batch,
    DeadLetter,
    InvokeFailure,
    Outcome,
    Release,
    Retry,
    Settlement,
    Split,
    Step,
)
from esm.threads.lane_threads import LaneThreads
from esm.threads.overruns import TakenOver

log = logging.getLogger(__name__)

Settle = Callable[[Settlement], None]
Crashed = Callable[[BaseException], None]


@dataclass(frozen=True, slots=True)
class _Job:
    batch: Batch
    attempt: int = 0
    invoke_count: int = 0
    delay_seconds: float = 0.0


@dataclass(slots=True)
class _Run:
    """One batch's journey through the lane worker; moves to another thread on takeover."""

    work: deque[_Job]
    outbox: _Outbox
    lane: str
    threads: LaneThreads | None
    crashed: Crashed | None


class LaneWorker:
    """Processes batches for one mapping; `process` runs on a pool thread per batch."""

    def __init__(self, *, invoker: Invoker, policy: FailurePolicy, dead_letterer: DeadLetterer,
                 metrics: MappingMetrics, clock: Clock, stop: threading.Event,
                 envelope_bytes: int, limiter: RateLimiter | None = None,
                 breaker: Breaker | None = None) -> None:
        self.invoker = invoker
        self.limiter = limiter
        self.breaker = breaker
        self.policy = policy
        self.dead_letterer = dead_letterer
        self.metrics = metrics
        self.clock = clock
        self.stop = stop
        self.envelope_bytes = envelope_bytes

    def process(self, batch: Batch, settle: Settle, threads: LaneThreads | None = None,
                crashed: Crashed | None = None) -> None:
        """Run `batch` to completion; always ends with a `finished` settlement, which also
        carries the batch's last ack or release. With `threads`, an inline target runs on
        this thread: if it overruns, the batch goes on on another of `threads` (which hands
        anything that continuation raises to `crashed`) and this call raises `TakenOver`."""
        self._drive(_Run(deque([_Job(batch)]), _Outbox(settle), batch.lane, threads, crashed))

    def _drive(self, run: _Run, decided: Callable[[], tuple[Step, ...] | None] | None = None
               ) -> None:
        """Apply `decided`'s steps (a taken-over invocation's), then the lane's work."""
        taken_over = False
        try:
            with log_context(lane=run.lane):  # every log line of this batch names its lane
                steps = decided() if decided is not None else ()
                if steps is not None and self._apply(steps, run):
                    self._run(run)
        except TakenOver:
            taken_over = True  # the batch, its outbox included, is another thread's now
            raise
        finally:
            if not taken_over:
                run.outbox.finish(run.lane)

    def _run(self, run: _Run) -> None:
        work, outbox = run.work, run.outbox
        while work:
            outbox.flush()  # nothing is held back while a retry waits or an invoke runs
            job = work.popleft()
            if job.delay_seconds and self.clock.wait(self.stop, job.delay_seconds):
                return
            if self.stop.is_set() and job.invoke_count:
                return  # draining: finish what is in flight, start no new retries
            steps = self._attempt(job, run)
            if steps is None or not self._apply(steps, run):
                return

    def _attempt(self, job: _Job, run: _Run) -> tuple[Step, ...] | None:
        """Screen, then invoke what is left, then ask the policy what comes next; None when
        the daemon stopped while the lane waited for its turn."""
        if len(job.batch) == 1 and not self._fits(job.batch):
            return (DeadLetter(job.batch.records, "MaximumPayloadSizeExceeded"),)
        steps, rest = self.policy.screen(job.batch, self.clock.now())
        if rest is None:
            return steps
        admission = self._wait_turn(rest)
        if admission is None:
            return None
        takeover = None
        if run.threads is not None:
            takeover = Takeover(run.threads.watch, lambda outcome: self._resume(
                run, lambda: steps + self._judge(rest, job, admission, outcome)))
        result = self.invoker.invoke(rest, takeover)
        if isinstance(result, Oversized):
            if self.breaker is not None:  # nothing was sent: a probe slot is given back
                self.breaker.forgo(admission)
            return steps + self._oversized(rest, job)
        return steps + self._judge(rest, job, admission, result)

    def _judge(self, batch: Batch, job: _Job, admission: Admission,
               outcome: Outcome) -> tuple[Step, ...]:
        """Tell the breaker how the invocation went; the policy's next steps."""
        if self.breaker is not None:
            failed = outcome.reason if isinstance(outcome, InvokeFailure) else None
            self.breaker.record(admission, failed is not None, failed or "")
        return self.policy.decide(batch, outcome, attempt=job.attempt,
                                  invoke_count=job.invoke_count + 1, now=self.clock.now())

    def _resume(self, run: _Run, decided: Callable[[], tuple[Step, ...]]) -> None:
        """Carry a taken-over batch on, on this (another) lane thread."""
        try:
            self._drive(run, decided)
        except TakenOver:
            raise
        except BaseException as exc:
            if run.crashed is None:
                raise
            run.crashed(exc)

    def _wait_turn(self, batch: Batch) -> Admission | None:
        """The target's protections, in order: the circuit breaker (is the target being
        given a rest?), then the rate limit (is it this lane's turn?). None on stop."""
        admission = Admission()
        if self.breaker is not None:
            admitted = self.breaker.admit(self.stop)
            if admitted is None:
                return None
            admission = admitted
        if self.limiter is not None:
            went, waited = self.limiter.wait_turn(len(batch), self.stop)
            self.metrics.count("rate_limited_seconds", waited)
            if not went:
                return None
        return admission

    def _fits(self, batch: Batch) -> bool:
        size = self.envelope_bytes + batch.size_bytes + len(batch)
        return size <= self.invoker.max_payload_bytes

    def _oversized(self, batch: Batch, job: _Job) -> tuple[Step, ...]:
        """The encoded event came out over 6 MB: halve it, or give up on a lone record."""
        if len(batch) == 1:
            return (DeadLetter(batch.records, "MaximumPayloadSizeExceeded"),)
        half = len(batch) // 2
        halves = (Batch(batch.lane, batch.records[:half]), Batch(batch.lane, batch.records[half:]))
        return (Split(halves, job.attempt, job.invoke_count),)

    def _apply(self, steps: tuple[Step, ...], run: _Run) -> bool:
        """Carry out steps in order; False when the daemon stopped mid-way."""
        lane, work, outbox = run.lane, run.work, run.outbox
        settle = outbox.put
        follow_ups: list[_Job] = []
        for step in steps:
            match step:
                case Ack(records=records):
                    settle(Settlement(lane, ack=records))
                case Release(records=records, delay_seconds=delay):
                    settle(Settlement(lane, release=records, release_delay_seconds=delay))
                case Retry(batch=retry, delay_seconds=delay, attempt=attempt, invoke_count=n):
                    self.metrics.count("retries")
                    follow_ups.append(_Job(retry, attempt, n, delay))
                case Split(batches=halves, attempt=attempt, invoke_count=n):
                    self.metrics.count("bisections")
                    follow_ups.extend(_Job(half, attempt, n) for half in halves)
                case DeadLetter(records=records):
                    outbox.flush()  # earlier settlements do not wait for the destination
                    if not self.dead_letterer.send(step, lane):
                        return False
                    settle(Settlement(lane, ack=records))
        work.extendleft(reversed(follow_ups))
        return True


class _Outbox:
    """Settlements of one batch on their way to the reader. The latest one is held back
    until the next is sent, so that the batch's final ack or release travels together with
    `finished`: one hand-off to the reader thread per batch instead of two (a measurable
    share of the per-batch cost at small batch sizes). Order is unchanged."""

    __slots__ = ("_settle", "_held")

    def __init__(self, settle: Settle) -> None:
        self._settle = settle
        self._held: Settlement | None = None

    def put(self, settlement: Settlement) -> None:
        if self._held is not None:
            self._settle(self._held)
        self._held = settlement

    def flush(self) -> None:
        """Send the held settlement now (before anything that may take time)."""
        if self._held is not None:
            held, self._held = self._held, None
            self._settle(held)

    def finish(self, lane: str) -> None:
        """The last settlement of the batch: the held one (if any) marked `finished`."""
        held, self._held = self._held, None
        if held is None:
            self._settle(Settlement(lane, finished=True))
        else:
            self._settle(Settlement(held.lane, held.ack, held.release,
                                    held.release_delay_seconds, True, held.details))
