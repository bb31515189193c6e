"""Offset commits of the Kafka source: cheap asynchronous commits of acked offsets, with a
synchronous commit wherever the consumer is about to lose its partitions.

Guarantee kept (ESM-SPEC §4.4): an offset is committed only after the core acked the records
before it. What changes is when: `note` only remembers the latest acked offset per
partition; `flush` sends everything noted since the last flush as ONE `commit_async` (so the
acks of several lanes settled in one reader turn cost one request), and `commit_sync` makes
the latest acked offsets durable before partitions are revoked and when the source closes.

Failed asynchronous commits (checked on the next flush, on the reader thread):
- the group moved on (rebalance, lost generation): dropped; the new owner redelivers from
  the last commit (duplicates, never losses);
- retriable (coordinator moved, timeout): the offset is sent again on the next flush, unless
  a later commit of that partition has been sent since (a retry never moves an offset back);
  after `max_failures` consecutive failures SourceUnavailable is raised;
- anything else (authorization, ...): SourceUnavailable, so the supervisor restarts the
  source; acked offsets not yet committed are redelivered (at most a few batches per lane).
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Iterable
from typing import Any

from kafka import TopicPartition  # type: ignore[import-untyped]
from kafka import errors as kafka_errors
from kafka.structs import OffsetAndMetadata  # type: ignore[import-untyped]

from esm.errors import SourceUnavailable

log = logging.getLogger(__name__)

Offsets = dict[TopicPartition, OffsetAndMetadata]

# The group moved on: the commit is refused and the records go to the new owner again.
LOST_GENERATION = (kafka_errors.CommitFailedError, kafka_errors.IllegalGenerationError,
                   kafka_errors.UnknownMemberIdError, kafka_errors.RebalanceInProgressError)


class OffsetCommitter:
    """Per-partition commit state of one consumer. Called on the reader thread only, except
    `_completed`, which kafka-python's callbacks append to (a deque is thread-safe)."""

    def __init__(self, mapping: str, *, timeout_ms: int, max_failures: int = 10) -> None:
        self._mapping = mapping
        self._timeout_ms = timeout_ms
        self._max_failures = max_failures
        self._acked: Offsets = {}  # latest acked next-offset per partition
        self._pending: Offsets = {}  # acked since the last flush
        self._requested: dict[TopicPartition, int] = {}  # highest offset sent
        self.committed: dict[TopicPartition, int] = {}  # confirmed by the broker
        self._completed: collections.deque[tuple[Offsets, Any]] = collections.deque()
        self._failures = 0
        self._outstanding = 0  # async commits sent whose callback has not been seen
        self._outstanding_deadline = 0.0

    def note(self, tp: TopicPartition, offset: int, epoch: int) -> None:
        """Records before `offset` are acked; commit `offset` on the next flush."""
        current = self._acked.get(tp)
        if current is None or current.offset < offset:
            meta = OffsetAndMetadata(offset, "", epoch)
            self._acked[tp] = self._pending[tp] = meta

    def flush(self, consumer: Any) -> None:
        """Check finished async commits, then send what was acked since the last flush —
        unless a commit is still on its way: then acks keep coalescing until it answers, so
        a fast reader never piles up requests (kafka-python refuses them with
        NodeNotReadyError once max_in_flight is reached)."""
        self._check_completed()
        if not self._pending:
            return
        if self._outstanding and time.monotonic() < self._outstanding_deadline:
            return
        offsets, self._pending = self._pending, {}
        for tp, meta in offsets.items():
            self._requested[tp] = max(self._requested.get(tp, -1), meta.offset)
        try:
            consumer.commit_async(offsets=offsets, callback=self._on_complete)
        except kafka_errors.KafkaError as exc:
            raise SourceUnavailable(f"kafka commit failed: {exc}") from exc
        self._outstanding += 1
        # A commit that never answers must not stop commits for good.
        self._outstanding_deadline = time.monotonic() + 2 * self._timeout_ms / 1000

    def commit_sync(self, consumer: Any, tps: Iterable[TopicPartition]) -> None:
        """Commit, and wait for, the latest acked offsets of `tps` the broker has not
        confirmed (before a revocation or close). Refusals after a rebalance are dropped."""
        self._check_completed(raise_errors=False)
        offsets = {tp: meta for tp in tps if (meta := self._acked.get(tp)) is not None
                   and self.committed.get(tp, -1) < meta.offset}
        if not offsets:
            return
        try:
            consumer.commit(offsets=offsets, timeout_ms=self._timeout_ms)
        except LOST_GENERATION as exc:
            log.warning("kafka commit refused after a rebalance mapping=%s: %s",
                        self._mapping, exc)
            return
        except kafka_errors.KafkaError as exc:
            raise SourceUnavailable(f"kafka commit failed: {exc}") from exc
        self._confirm(offsets)

    def forget(self, tps: Iterable[TopicPartition]) -> None:
        """The partitions went to another member: never commit for them again."""
        for tp in tps:
            for table in (self._acked, self._pending, self._requested, self.committed):
                table.pop(tp, None)

    def position(self, tp: TopicPartition) -> int | None:
        """Where the group stands on `tp` as far as this consumer knows: the latest acked
        offset (committed or about to be), else the broker's committed offset."""
        acked = self._acked.get(tp)
        committed = self.committed.get(tp)
        if acked is None:
            return committed
        offset = int(acked.offset)
        return offset if committed is None else max(offset, committed)

    def unconfirmed(self) -> list[TopicPartition]:
        """Partitions with acked offsets the broker has not confirmed yet."""
        return [tp for tp, meta in self._acked.items()
                if self.committed.get(tp, -1) < meta.offset]

    # ---- completions -----------------------------------------------------------------

    def _on_complete(self, offsets: Offsets, response: Any) -> None:
        self._completed.append((offsets, response))

    def _check_completed(self, raise_errors: bool = True) -> None:
        fatal: Exception | None = None
        while self._completed:
            offsets, response = self._completed.popleft()
            self._outstanding = max(0, self._outstanding - 1)
            if not isinstance(response, Exception):
                self._failures = 0
                self._confirm(offsets)
            elif isinstance(response, LOST_GENERATION):
                log.warning("kafka commit refused after a rebalance mapping=%s: %s",
                            self._mapping, response)
            elif getattr(response, "retriable", False):
                self._failures += 1
                self._retry(offsets)
                if self._failures > self._max_failures:
                    fatal = response
            else:
                fatal = response
        if fatal is not None and raise_errors:
            raise SourceUnavailable(f"kafka commit failed: {fatal!r}") from fatal

    def _retry(self, offsets: Offsets) -> None:
        """Send a failed offset again unless a later one of its partition went out since."""
        for tp, meta in offsets.items():
            if tp in self._acked and self._requested.get(tp, -1) <= meta.offset \
                    and tp not in self._pending:
                self._pending[tp] = meta
        log.info("kafka async commit failed, retrying mapping=%s partitions=%d",
                 self._mapping, len(offsets))

    def _confirm(self, offsets: Offsets) -> None:
        for tp, meta in offsets.items():
            if tp in self._acked and self.committed.get(tp, -1) < meta.offset:
                self.committed[tp] = meta.offset
