"""One invocation of the target with one batch: build the event, encode it, call the
target within its timeout, and turn what came back into an Outcome (ESM-SPEC §4.1).

Target exceptions other than InvokeError are connector bugs; they are logged with their
traceback and treated as invoke failures, so the records are retried rather than lost.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass

import orjson

from esm import status as st
from esm.errors import InvokeError
from esm.interfaces import Source, Target
from esm.metrics import MappingMetrics
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
from esm.responses import interpret
from esm.status import MappingStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Oversized:
    """The encoded event is over 6 MB although the batcher's estimate fitted."""

    size_bytes: int


class Invoker:
    """Invokes one mapping's target; safe to use from several lane workers."""

    def __init__(self, *, source: Source, target: Target, timeout_seconds: float,
                 report_batch_item_failures: bool, metrics: MappingMetrics,
                 status: MappingStatus, max_payload_bytes: int = MAX_PAYLOAD_BYTES) -> None:
        self.source = source
        self.target = target
        self.timeout_seconds = timeout_seconds
        self.report_batch_item_failures = report_batch_item_failures
        self.metrics = metrics
        self.status = status
        self.max_payload_bytes = max_payload_bytes

    def invoke(self, batch: Batch) -> Outcome | Oversized:
        document = self.source.build_event(list(batch.records))
        body = orjson.dumps(document)
        if len(body) > self.max_payload_bytes:
            return Oversized(len(body))
        event = Event(document, body, str(uuid.uuid4()))
        started = time.perf_counter()
        outcome = self._call(event, batch)
        self.metrics.duration.observe(time.perf_counter() - started)
        self._count(batch, outcome)
        return outcome

    def _call(self, event: Event, batch: Batch) -> Outcome:
        try:
            result = self.target.invoke(event, self.timeout_seconds)
        except InvokeError as exc:
            return InvokeFailure(str(exc))
        except Exception as exc:  # a connector bug must not lose records: retry them
            log.exception("target raised %s; treating it as an invoke error", type(exc).__name__)
            return InvokeFailure(f"{type(exc).__name__}: {exc}")
        return interpret(result, batch,
                         report_batch_item_failures=self.report_batch_item_failures,
                         item_identifier=self.source.item_identifier)

    def _count(self, batch: Batch, outcome: Outcome) -> None:
        m = self.metrics
        m.count("invocations")
        m.count("invoked", len(batch))
        m.batch_size.observe(len(batch))
        match outcome:
            case Success():
                self.status.update(last_processing_result=st.OK, last_error=None)
            case PartialFailure(failed=failed):
                m.count("failed_invoke", len(failed))
                self.status.update(last_processing_result=st.OK)
            case FunctionError(error_type=kind, error_message=message):
                m.count("function_errors")
                m.count("failed_invoke", len(batch))
                self.status.update(last_processing_result=st.FUNCTION_FAILED,
                                   last_error=f"{kind}: {message}"[:500])
            case InvokeFailure(reason=reason):
                m.count("invoke_errors")
                m.count("failed_invoke", len(batch))
                self.status.update(last_processing_result=st.INVOKE_FAILED,
                                   last_error=reason[:500])
