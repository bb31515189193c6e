"""Keep the messages esm holds invisible until esm lets go of them (ChangeMessageVisibility).

Why: SQS hides a received message for the visibility timeout, counted from the receive. esm
holds messages longer than the target runs: read ahead in the source, waiting for a free
lane, waiting for a target that serves a few invocations at a time. Once the timeout runs
out while esm still holds a message, SQS hands it out again (to this reader or another
replica), so two copies are invoked at once, the first copy's receipt handle goes stale and
its delete or visibility change is refused, and the message comes back yet again. Under a
busy target that loop feeds itself: a test with a one-at-a-time Lambda runtime taking 1.2 s a
batch against a 2 s visibility timeout invoked each of 40 messages about 15 times.

So, like AWS's own message-processing frameworks, esm extends the visibility of every message
it holds once half of the current visibility period has passed, to the queue's timeout again,
until the message is acked (deleted) or released. A daemon killed with messages held still
gets them back within one visibility timeout: the timeout stays the crash-recovery bound.
`extend_visibility: false` keeps AWS's event-source-mapping behaviour (no extension).

Threads: the reader adds and removes handles; one keeper thread makes the calls. A release
with a retry delay may race an extension already on the wire for the same message; the keeper
then sets the release's delay again after its call, so the later write is the release's.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from connectors.aws.clients import error_code
from connectors.holding.ticker import Ticker
from connectors.sqs.ops import batch_call, change_visibility, chunks
from esm.interfaces import Clock

log = logging.getLogger(__name__)

WARN_EVERY_SECONDS = 30.0


class VisibilityKeeper:
    """Extends held messages' visibility to `visibility_seconds` every half period."""

    def __init__(self, client: Any, queue_url: str, visibility_seconds: int,
                 clock: Clock) -> None:
        self._client = client
        self._queue_url = queue_url
        self._visibility = visibility_seconds
        self._clock = clock
        self._lock = threading.Lock()
        # handle -> monotonic start of its current visibility period
        self._held: dict[str, float] = {}
        self._on_the_wire: set[str] = set()
        self._released_meanwhile: dict[str, float] = {}
        self._ticker: Ticker | None = None
        self._last_warning = -WARN_EVERY_SECONDS
        self.extended = 0  # messages extended so far (tests, logs)

    @property
    def tick_seconds(self) -> float:
        """How often the keeper looks: a quarter period, at most 1 s, at least 0.1 s."""
        return max(0.1, min(1.0, self._visibility / 4))

    def start(self, name: str) -> None:
        """Look on a thread of its own. What is due is measured on the injected clock, so
        a test moves that clock and calls `extend_due` instead."""
        self._ticker = Ticker(name, self.tick_seconds, self.extend_due)
        self._ticker.start()

    def close(self) -> None:
        if self._ticker is not None:
            self._ticker.close()

    # ---- reader side ----------------------------------------------------------------

    def hold(self, handles: Iterable[str], since: float) -> None:
        """Messages received at monotonic time `since` (taken when the receive returned)."""
        with self._lock:
            for handle in handles:
                self._held[handle] = since

    def let_go(self, handles: Iterable[str]) -> None:
        """Messages acked, or released to the visibility timeout they have."""
        with self._lock:
            for handle in handles:
                self._held.pop(handle, None)

    def released(self, handles: Iterable[str], delay_seconds: float) -> None:
        """Messages whose visibility the reader sets to `delay_seconds` itself."""
        with self._lock:
            for handle in handles:
                self._held.pop(handle, None)
                if handle in self._on_the_wire:
                    self._released_meanwhile[handle] = delay_seconds

    def held(self) -> int:
        with self._lock:
            return len(self._held)

    # ---- keeper side ----------------------------------------------------------------

    def extend_due(self) -> int:
        """One pass: extend every held message past half its period. Returns how many."""
        due = self._take_due()
        if not due:
            return 0
        refused: dict[str, str] = {}
        try:
            for part in chunks(due):
                refused.update(self._extend(part))
        except Exception as exc:  # boto3 ClientError / BotoCoreError: try again next tick
            self._warn(f"could not extend the visibility of {len(due)} held message(s) "
                       f"({error_code(exc)}); SQS may deliver them again")
            self._finish(due, succeeded=set(), failed_call=True)
            return 0
        ok = {h for h in due if h not in refused}
        still_held = self._finish(due, succeeded=ok, failed_call=False)
        self._report_refused({h: code for h, code in refused.items() if h in still_held})
        self.extended += len(ok)
        return len(ok)

    def _take_due(self) -> list[str]:
        threshold = self._clock.monotonic() - self._visibility / 2
        with self._lock:
            due = [handle for handle, since in self._held.items() if since <= threshold]
            self._on_the_wire.update(due)
            return due

    def _extend(self, handles: Sequence[str]) -> dict[str, str]:
        """One ChangeMessageVisibilityBatch; the refused handles with their error codes."""
        pending = {str(i): h for i, h in enumerate(handles)}
        answer = batch_call(self._client, self._queue_url, pending, self._visibility)
        return {pending[f["Id"]]: str(f.get("Code")) for f in answer.get("Failed") or ()}

    def _finish(self, due: list[str], succeeded: set[str], failed_call: bool) -> set[str]:
        """Restart the period of the extended messages, forget the refused ones, replay
        releases that raced the call. Returns the handles still held when the call ended."""
        now = self._clock.monotonic()
        still_held: set[str] = set()
        with self._lock:
            for handle in due:
                self._on_the_wire.discard(handle)
                if handle not in self._held:
                    continue  # acked or released while the call was on the wire
                still_held.add(handle)
                if handle in succeeded:
                    self._held[handle] = now
                elif not failed_call:
                    del self._held[handle]  # refused: SQS will not hide it any longer
            replay: dict[float, list[str]] = {}
            for handle in due:
                if handle in self._released_meanwhile:
                    replay.setdefault(self._released_meanwhile.pop(handle), []).append(handle)
        for delay, handles in replay.items():
            change_visibility(self._client, self._queue_url, handles, delay)
        return still_held

    def _report_refused(self, refused: dict[str, str]) -> None:
        """Refusals for messages still held: SQS no longer lets esm hide them (another
        receive took them, or the 12-hour limit). Refusals for messages let go while the
        call was on the wire are expected and not reported."""
        if not refused:
            return
        codes = sorted(set(refused.values()))
        self._warn(f"SQS refused to extend the visibility of {len(refused)} held message(s) "
                   f"({', '.join(codes)}); they may be delivered again")

    def _warn(self, text: str) -> None:
        now = self._clock.monotonic()
        if now - self._last_warning >= WARN_EVERY_SECONDS:
            self._last_warning = now
            log.warning("sqs visibility keeper on %s: %s", self._queue_url, text)
