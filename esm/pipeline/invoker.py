"""One invocation of the target with one batch: build the event, encode it, call the
target within its timeout, and turn what came back into an Outcome (ESM-SPEC §4.1). The
event carries the batch's idempotency key (`esm.protection.idempotency`); an InvokeError's
`retry_after_seconds` travels on to the failure policy in the InvokeFailure.

Target exceptions other than InvokeError are connector bugs; they are logged with their
traceback and treated as invoke failures, so the records are retried rather than lost.

This runs once per batch, so at small batch sizes its fixed costs are the pipeline's: the
request id is a counter under a random per-invoker prefix (not a uuid4 per call), and the
status is written only when the last processing result changes.

A target that can run the function on the caller's thread (`InlineTarget`) does so when
the lane worker offers a `Takeover`: the call runs under an overrun watch instead of on a
helper thread (esm.threads.overruns). If the function overruns `timeout_seconds`, the
target's `overrun_result` becomes the outcome and the batch goes on on another lane
thread (`Takeover.resume`); the stuck thread gets `TakenOver` when the call returns. Once
`MAX_STUCK_CALLS` overrun calls are still running, invocations fail as invoke errors
rather than strand more threads.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from esm.errors import InvokeError
from esm.failures.responses import interpret
from esm.interfaces import Source, Target
from esm.ops import status as st
from esm.ops.metrics import MappingMetrics
from esm.ops.status import MappingStatus
from esm.protection.idempotency import idempotency_key
from esm.records import (
    MAX_PAYLOAD_BYTES,
    Batch,
    Event,
    FunctionError,
    InvokeFailure,
    InvokeResult,
    Outcome,
    PartialFailure,
    Success,
)
from esm.threads.overruns import TakenOver, Watch

log = logging.getLogger(__name__)

MAX_STUCK_CALLS = 32


@dataclass(frozen=True, slots=True)
class Oversized:
    """The encoded event is over 6 MB although the batcher's estimate fitted."""

    size_bytes: int


@dataclass(frozen=True, slots=True)
class Takeover:
    """How an inline call's overrun is handled: `arm` starts the watch on the calling
    thread (`LaneThreads.watch`), `resume` carries the batch on with the overrun's outcome
    (called on another lane thread)."""

    arm: Callable[[float, Callable[[], None]], Watch]
    resume: Callable[[Outcome], None]


class Invoker:
    """Invokes one mapping's target; safe to use from several lane workers."""

    def __init__(self, *, source: Source, target: Target, timeout_seconds: float,
                 report_batch_item_failures: bool, metrics: MappingMetrics,
                 status: MappingStatus, max_payload_bytes: int = MAX_PAYLOAD_BYTES,
                 mapping: str = "") -> None:
        self.mapping = mapping or status.name
        self.source = source
        self.target = target
        self.timeout_seconds = timeout_seconds
        self.report_batch_item_failures = report_batch_item_failures
        self.metrics = metrics
        self.status = status
        self.max_payload_bytes = max_payload_bytes
        self._request_ids = RequestIds()
        # Optional on a source (EncodesEvents): its own, cheaper encoding of the event.
        self._encode_event = getattr(source, "encode_event", None)
        # A target that reads no body, and a source that builds owned documents (FreshEvents):
        # no encoding, and no decoding in the target, per invocation.
        fresh = getattr(source, "fresh_event", None)
        self._fresh_event = None if getattr(target, "reads_body", True) else fresh
        self._envelope = source.event_overhead_bytes() if self._fresh_event else 0
        # Optional on a target (InlineTarget): run the function on this thread.
        inline = getattr(target, "invoke_inline", None)
        self._overrun_result = getattr(target, "overrun_result", None)
        self._inline = inline if self._overrun_result is not None else None
        self._stuck = 0  # inline calls that overran and are still running
        self._stuck_lock = threading.Lock()

    @property
    def runs_inline(self) -> bool:
        """Whether the target can run the function on the calling thread (InlineTarget)."""
        return self._inline is not None

    def invoke(self, batch: Batch, takeover: Takeover | None = None) -> Outcome | Oversized:
        """The batch's outcome, or Oversized when its event is over the payload limit.
        With `takeover`, an inline target's overrun raises TakenOver here (see the module
        docstring)."""
        records = list(batch.records)
        fresh = self._fresh_event
        # Record sizes never under-count their encoding, so an estimate within the limit
        # means the event is within it; else measure the real encoding below.
        if fresh is not None and \
                self._envelope + batch.size_bytes + len(records) <= self.max_payload_bytes:
            return self._invoke(Event(fresh(records), b"", self._request_ids.next(),
                                      idempotency_key(self.mapping, batch.lane, records),
                                      owned=True), batch, takeover)
        document = self.source.build_event(records)
        encode = self._encode_event
        body = encode(records) if encode is not None else orjson.dumps(document)
        if len(body) > self.max_payload_bytes:
            return Oversized(len(body))
        return self._invoke(Event(document, body, self._request_ids.next(),
                                  idempotency_key(self.mapping, batch.lane, records)),
                            batch, takeover)

    def _invoke(self, event: Event, batch: Batch, takeover: Takeover | None) -> Outcome:
        started = time.perf_counter()
        if takeover is not None and self._inline is not None:
            outcome = self._call_inline(event, batch, takeover, started)
        else:
            outcome = self._call(event, batch)
        self.metrics.duration.observe(time.perf_counter() - started)
        self._count(batch, outcome)
        return outcome

    def _call(self, event: Event, batch: Batch) -> Outcome:
        try:
            result = self.target.invoke(event, self.timeout_seconds)
        except InvokeError as exc:
            return InvokeFailure(str(exc), exc.retry_after_seconds)
        except Exception as exc:  # a connector bug must not lose records: retry them
            return _connector_bug(exc)
        return self._interpret(result, batch)

    def _call_inline(self, event: Event, batch: Batch, takeover: Takeover,
                     started: float) -> Outcome:
        """The call on this thread under an overrun watch; TakenOver if it overran."""
        inline = self._inline
        assert inline is not None
        if self._stuck >= MAX_STUCK_CALLS:
            return InvokeFailure(
                f"{self._stuck} calls of the function ran past timeout_seconds "
                f"({self.timeout_seconds:g}) and are still running; no more calls until one "
                "returns (Python cannot stop them: the function must end on its own)")
        watch = takeover.arm(self.timeout_seconds,
                             lambda: self._overran(batch, started, takeover))
        try:
            result = inline(event, self.timeout_seconds)
        except InvokeError as exc:
            self._settle(watch)
            return InvokeFailure(str(exc), exc.retry_after_seconds)
        except Exception as exc:  # a connector bug must not lose records: retry them
            self._settle(watch)
            return _connector_bug(exc)
        except BaseException:  # goes up as it is, but the watch must not fire later
            self._settle(watch)
            raise
        self._settle(watch)
        return self._interpret(result, batch)

    def _settle(self, watch: Watch) -> None:
        """Go on if the call ended in time; else this thread leaves the batch alone."""
        if not watch.settle():
            with self._stuck_lock:
                self._stuck -= 1
            raise TakenOver

    def _overran(self, batch: Batch, started: float, takeover: Takeover) -> None:
        """On another lane thread, once the watch fired: the batch's outcome is the target's
        timeout result, and the batch goes on from there."""
        with self._stuck_lock:
            self._stuck += 1
        try:
            assert self._overrun_result is not None  # set whenever _inline is
            outcome = self._interpret(self._overrun_result(self.timeout_seconds), batch)
        except Exception as exc:  # a connector bug must not lose records: retry them
            outcome = _connector_bug(exc)
        self.metrics.duration.observe(time.perf_counter() - started)
        self._count(batch, outcome)
        takeover.resume(outcome)

    def _interpret(self, result: InvokeResult, batch: Batch) -> Outcome:
        return interpret(result, batch,
                         report_batch_item_failures=self.report_batch_item_failures,
                         item_identifier=self.source.item_identifier)

    def _count(self, batch: Batch, outcome: Outcome) -> None:
        m = self.metrics
        size = len(batch)
        m.count("invocations")
        m.count("invoked", size)
        m.batch_size.observe(size)
        match outcome:
            case Success():
                self._result(st.OK, None)
            case PartialFailure(failed=failed):
                m.count("failed_invoke", len(failed))
                self._result(st.OK, self.status.last_error)
            case FunctionError(error_type=kind, error_message=message):
                m.count("function_errors")
                m.count("failed_invoke", size)
                self._result(st.FUNCTION_FAILED, f"{kind}: {message}"[:500])
            case InvokeFailure(reason=reason):
                m.count("invoke_errors")
                m.count("failed_invoke", size)
                self._result(st.INVOKE_FAILED, reason[:500])

    def _result(self, result: str, error: str | None) -> None:
        """Record the last processing result; skips the status lock when nothing changes
        (the steady state: every batch succeeds). Unlocked reads of two attributes are
        safe; a racing writer at worst writes the same values again."""
        status = self.status
        if status.last_processing_result != result or status.last_error != error:
            status.update(last_processing_result=result, last_error=error)


def _connector_bug(exc: Exception) -> InvokeFailure:
    log.exception("target raised %s; treating it as an invoke error", type(exc).__name__)
    return InvokeFailure(f"{type(exc).__name__}: {exc}")


class RequestIds:
    """Unique, UUID-shaped request ids: a random prefix per instance and a 48-bit counter.
    `next` is safe from several threads (itertools.count advances atomically under the
    GIL) and costs a fraction of `uuid.uuid4()`, which reads the OS random source."""

    __slots__ = ("_prefix", "_counter")

    def __init__(self) -> None:
        self._prefix = str(uuid.uuid4())[:24]  # 8-4-4-4 and the dash, version 4 kept
        self._counter = itertools.count(int.from_bytes(uuid.uuid4().bytes[:6], "big"))

    def next(self) -> str:
        return f"{self._prefix}{next(self._counter) & 0xFFFFFFFFFFFF:012x}"
