"""Invocations of a mapping with tumbling windows (ESM-SPEC §2.5), in place of `Invoker`.

Every event carries the AWS window fields: `window {start, end}`, `state`, `shardId`,
`eventSourceARN`, `isFinalInvokeForWindow`, `isWindowTerminatedEarly`. The function must
answer `{"state": …, "batchItemFailures": […]}`:
- a response without `state` fails the invocation, so the failure policy retries it
  (retry settings apply to windows as to any batch); the final invoke of a window is the
  exception: its state is dropped anyway, so any successful response ends the window;
- on a partial failure the returned state is kept and counts the records before the first
  failed one (those are checkpointed; the rest are retried with that state);
- state over 1 MB ends the window early: its final invoke comes next, then the rest of the
  window's time range starts with empty state.
The final invoke of an ended window carries no records. It runs as soon as a record of a
later window is due (before that record's batch) or when the reader finds the window's
end passed (an empty batch, `Reader` via `WindowBook.due`). A final that keeps failing is
given up after `maximum_retry_attempts` (never, with -1), like any batch.

Lane workers call this; a lane has one batch in flight, so a lane's window is never
updated from two threads at once (parallelization_factor is 1 with windows).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from esm.errors import InvokeError
from esm.failures.responses import interpret
from esm.interfaces import Clock
from esm.pipeline.invoker import Invoker, Oversized, Takeover
from esm.records import (
    Batch,
    Event,
    FunctionError,
    FunctionFailed,
    InvokeFailure,
    Outcome,
    PartialFailure,
    Record,
    Returned,
    Success,
)
from esm.windows.book import (
    MAX_STATE_BYTES,
    LaneWindow,
    WindowBook,
    iso_second,
    window_bounds,
)

log = logging.getLogger(__name__)

MISSING_STATE = "MissingWindowState"


class WindowInvoker(Invoker):
    """`Invoker` for windowed mappings; see the module docstring."""

    def __init__(self, *, book: WindowBook, max_retries: int, clock: Clock,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.book = book
        self.max_retries = max_retries
        self.clock = clock
        self._source_arn = getattr(self.source, "event_source_arn", lambda: None)

    def invoke(self, batch: Batch, takeover: Takeover | None = None) -> Outcome | Oversized:
        """`takeover` is not used: a window's state is folded in after the call returns, so
        its calls keep to the target's own timeout (`Target.invoke`), never run inline."""
        lane = batch.lane
        window = self.book.window(lane)
        if not batch.records:  # queued when the window looked ended; records may have
            if window is not None and not (window.terminated_early or window.lane_ended) \
                    and window.end > self.clock.now():  # opened a newer one since
                window = None
            return self._final(lane, window)
        records = self._not_folded(lane, batch.records)
        if not records:
            return Success()  # folded into a saved state before a crash: never twice
        start, end = window_bounds(records[0].timestamp, self.book.seconds)
        if window is not None and start < window.start and not window.terminated_early:
            start, end = window.start, window.end  # a late record joins the open window
        if window is not None and (window.terminated_early or window.start != start):
            outcome = self._final(lane, window)
            if not isinstance(outcome, Success):
                return outcome  # the batch waits for its lane's window to end
            window = None
        window = window or LaneWindow(start, end)
        part = Batch(lane, tuple(records))
        result = self._send(part, window, final=False)
        if isinstance(result, Oversized | InvokeFailure):
            return result
        outcome, state = self._read(result, part, final=False)
        self._fold(lane, window, part, outcome, state)
        self._count(part, outcome)
        return outcome

    # -- pieces -------------------------------------------------------------------------------

    def _not_folded(self, lane: str, records: Sequence[Record]) -> list[Record]:
        """Records after the last one already in a saved state (sequence numbers compare
        as integers; anything else is taken as not folded)."""
        folded = self.book.folded_up_to(lane)
        if folded is None or not folded.isdigit():
            return list(records)
        limit = int(folded)
        return [r for r in records if not (r.position.isdigit() and int(r.position) <= limit)]

    def _final(self, lane: str, window: LaneWindow | None) -> Outcome:
        if window is None:
            self.book.final_done(lane)
            return Success()
        empty = Batch(lane, ())
        result = self._send(empty, window, final=True)
        if isinstance(result, Oversized):  # the state alone is over 6 MB
            result = FunctionFailed("EventTooLarge", f"{result.size_bytes} bytes")
        outcome = result if isinstance(result, InvokeFailure) else \
            self._read(result, empty, final=True)[0]
        self._count(empty, outcome)
        if isinstance(outcome, Success):
            self.book.close(lane, window)
            return outcome
        if isinstance(outcome, FunctionError):
            window.final_failures += 1
            if 0 <= self.max_retries < window.final_failures:
                log.error("lane %s: final invoke of window %s failed %d times; window dropped",
                          lane, iso_second(window.start), window.final_failures)
                self.book.close(lane, window)
                return Success()
        return outcome

    def _send(self, batch: Batch, window: LaneWindow, *, final: bool
              ) -> Returned | FunctionFailed | InvokeFailure | Oversized:
        document = dict(self.source.build_event(list(batch.records)))
        document.update(self._window_fields(batch.lane, window, final))
        body = orjson.dumps(document)
        if len(body) > self.max_payload_bytes:
            return Oversized(len(body))
        event = Event(document, body, self._request_ids.next())
        started = time.perf_counter()
        try:
            return self.target.invoke(event, self.timeout_seconds)
        except InvokeError as exc:
            return InvokeFailure(str(exc))
        except Exception as exc:  # a connector bug must not lose records: retry them
            log.exception("target raised %s; treating it as an invoke error", type(exc).__name__)
            return InvokeFailure(f"{type(exc).__name__}: {exc}")
        finally:
            self.metrics.duration.observe(time.perf_counter() - started)

    def _window_fields(self, lane: str, window: LaneWindow, final: bool) -> dict[str, Any]:
        return {"window": {"start": iso_second(window.start), "end": iso_second(window.end)},
                "state": window.state, "shardId": lane, "eventSourceARN": self._source_arn(),
                "isFinalInvokeForWindow": final,
                "isWindowTerminatedEarly": final and window.terminated_early}

    def _read(self, result: Returned | FunctionFailed, batch: Batch, *, final: bool
              ) -> tuple[Outcome, Any]:
        """The outcome and the returned state (ESM-SPEC §2.5: no state, no success)."""
        if isinstance(result, FunctionFailed):
            return FunctionError(result.error_type, result.error_message, "Unhandled"), None
        payload = result.payload
        if not isinstance(payload, Mapping) or "state" not in payload:
            if final:
                return Success(), None
            return FunctionError(MISSING_STATE, "a tumbling-window response must carry "
                                 "`state` (ESM-SPEC §2.5)", None), None
        outcome = interpret(result, batch, report_batch_item_failures=(
            self.report_batch_item_failures), item_identifier=self.source.item_identifier)
        return outcome, payload["state"]

    def _fold(self, lane: str, window: LaneWindow, batch: Batch, outcome: Outcome,
              state: Any) -> None:
        """Keep the returned state with the last record it covers; over 1 MB, end early."""
        match outcome:
            case Success():
                last = batch.records[-1]
            case PartialFailure(failed=failed):
                index = batch.records.index(failed[0])
                if index == 0:
                    return
                last = batch.records[index - 1]
            case _:
                return
        window.state = state
        window.last_position = last.position
        window.terminated_early = len(orjson.dumps(state)) > MAX_STATE_BYTES
        self.book.update(lane, window)
