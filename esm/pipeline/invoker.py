"""One invocation of the target with one batch: build the event, encode it, call the
target within its timeout, and turn what came back into an Outcome (ESM-SPEC §4.1). The
event carries the batch's idempotency key (`esm.protection.idempotency`); an InvokeError's
`retry_after_seconds` travels on to the failure policy in the InvokeFailure.

Target exceptions other than InvokeError are connector bugs; they are logged with their
traceback and treated as invoke failures, so the records are retried rather than lost.

This runs once per batch, so at small batch sizes its fixed costs are the pipeline's: the
request id is a counter under a random per-invoker prefix (not a uuid4 per call), and the
status is written only when the last processing result changes.
"""

from __future__ import annotations

import itertools
import logging
import time
import uuid
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
    Outcome,
    PartialFailure,
    Success,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Oversized:
    """The encoded event is over 6 MB although the batcher's estimate fitted."""

    size_bytes: int


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

    def invoke(self, batch: Batch) -> Outcome | Oversized:
        records = list(batch.records)
        fresh = self._fresh_event
        # Record sizes never under-count their encoding, so an estimate within the limit
        # means the event is within it; else measure the real encoding below.
        if fresh is not None and \
                self._envelope + batch.size_bytes + len(records) <= self.max_payload_bytes:
            return self._invoke(Event(fresh(records), b"", self._request_ids.next(),
                                      idempotency_key(self.mapping, batch.lane, records),
                                      owned=True), batch)
        document = self.source.build_event(records)
        encode = self._encode_event
        body = encode(records) if encode is not None else orjson.dumps(document)
        if len(body) > self.max_payload_bytes:
            return Oversized(len(body))
        return self._invoke(Event(document, body, self._request_ids.next(),
                                  idempotency_key(self.mapping, batch.lane, records)), batch)

    def _invoke(self, event: Event, batch: Batch) -> Outcome:
        started = time.perf_counter()
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
            log.exception("target raised %s; treating it as an invoke error", type(exc).__name__)
            return InvokeFailure(f"{type(exc).__name__}: {exc}")
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
