"""Offset commits of the Kafka source: cheap asynchronous commits of acked offsets, with a
synchronous commit wherever the consumer is about to lose its partitions.

Guarantee kept (ESM-SPEC §4.4): an offset is committed only after the core acked the records
before it. What changes is when: `note` only remembers the latest acked offset per
partition; `flush` sends everything noted since the last flush as ONE asynchronous commit
(so the acks of several lanes settled in one reader turn cost one request), and
`commit_sync` makes the latest acked offsets durable before partitions are revoked and when
the source closes.

librdkafka answers asynchronous commits through the consumer's `on_commit` callback, served
on the reader thread inside consume/poll (`on_commit` here only queues the answer); the
next flush reads it. While one commit is unanswered, acks keep coalescing: a fast reader
never piles up requests.

Failed asynchronous commits (checked on the next flush, on the reader thread):
- the group moved on (rebalance, lost generation, assignment lost): dropped; the new owner
  redelivers from the last commit (duplicates, never losses);
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
from collections.abc import Iterable, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from esm.errors import SourceUnavailable

log = logging.getLogger(__name__)

Key = tuple[str, int]  # (topic, partition)

# The group moved on: the commit is refused and the records go to the new owner again.
LOST_GENERATION = frozenset({KafkaError.REBALANCE_IN_PROGRESS, KafkaError.ILLEGAL_GENERATION,
                             KafkaError.UNKNOWN_MEMBER_ID, KafkaError._ASSIGNMENT_LOST})
# Worth sending again: the commit callback's KafkaError does not always carry librdkafka's
# retriable flag, so the codes that mean "coordinator or network, for now" are named here.
RETRIABLE = frozenset({KafkaError._TIMED_OUT, KafkaError._TRANSPORT, KafkaError._WAIT_COORD,
                       KafkaError._ALL_BROKERS_DOWN, KafkaError.REQUEST_TIMED_OUT,
                       KafkaError.COORDINATOR_NOT_AVAILABLE, KafkaError.NOT_COORDINATOR,
                       KafkaError.COORDINATOR_LOAD_IN_PROGRESS, KafkaError.NETWORK_EXCEPTION})


def key(tp: Any) -> Key:
    return (tp.topic, tp.partition)


def is_retriable(error: KafkaError) -> bool:
    return error.code() in RETRIABLE or bool(error.retriable())


class OffsetCommitter:
    """Per-partition commit state of one consumer, keyed by (topic, partition). Reader thread
    only (librdkafka serves `on_commit` there too)."""

    def __init__(self, mapping: str, *, max_failures: int = 10,
                 answer_timeout_seconds: float = 60.0) -> None:
        self._mapping = mapping
        self._max_failures = max_failures
        self._answer_timeout = answer_timeout_seconds
        self._acked: dict[Key, tuple[int, int | None]] = {}  # next offset, leader epoch
        self._pending: dict[Key, tuple[int, int | None]] = {}  # acked since the last flush
        self._requested: dict[Key, int] = {}  # highest offset sent
        self._in_flight: dict[Key, int] = {}  # the async commit not answered yet
        self._in_flight_deadline = 0.0
        self.committed: dict[Key, int] = {}  # confirmed by the broker
        self._answers: collections.deque[tuple[KafkaError | None, list[Any]]] = \
            collections.deque()
        self._failures = 0

    def note(self, tp: Key, offset: int, epoch: int | None) -> None:
        """Records before `offset` are acked; commit `offset` on the next flush."""
        current = self._acked.get(tp)
        if current is None or current[0] < offset:
            self._acked[tp] = self._pending[tp] = (offset, epoch)

    def on_commit(self, error: KafkaError | None, partitions: list[Any]) -> None:
        """librdkafka's `on_commit` callback: keep the answer for the next flush."""
        self._answers.append((error, list(partitions)))

    def flush(self, consumer: Any) -> None:
        """Read commit answers, then send what was acked since the last flush — unless a
        commit is still on its way: then acks keep coalescing until it answers."""
        self._check_answers()
        if not self._pending:
            return
        if self._in_flight and time.monotonic() < self._in_flight_deadline:
            return
        offsets, self._pending = self._pending, {}
        for tp, (offset, _) in offsets.items():
            self._requested[tp] = max(self._requested.get(tp, -1), offset)
            self._in_flight[tp] = offset
        try:
            consumer.commit(offsets=_partitions(offsets), asynchronous=True)
        except KafkaException as exc:
            raise SourceUnavailable(f"kafka commit failed: {exc}") from exc
        # A commit that never answers must not stop commits for good.
        self._in_flight_deadline = time.monotonic() + self._answer_timeout

    def commit_sync(self, consumer: Any, tps: Iterable[Key]) -> None:
        """Commit, and wait for, the latest acked offsets of `tps` the broker has not
        confirmed (before a revocation or close). Refusals after a rebalance are dropped."""
        self._check_answers(raise_errors=False)
        offsets = {tp: acked for tp in tps if (acked := self._acked.get(tp)) is not None
                   and self.committed.get(tp, -1) < acked[0]}
        if not offsets:
            return
        try:
            answered = consumer.commit(offsets=_partitions(offsets), asynchronous=False)
        except KafkaException as exc:
            self._sync_failed(exc.args[0] if exc.args else None, exc)
            return
        errors = [p.error for p in answered or () if p.error is not None]
        if errors:
            self._sync_failed(errors[0], None)
            return
        self._confirm((tp, offset) for tp, (offset, _) in offsets.items())

    def _sync_failed(self, error: Any, exc: Exception | None) -> None:
        if isinstance(error, KafkaError) and error.code() in LOST_GENERATION:
            log.warning("kafka commit refused after a rebalance mapping=%s: %s",
                        self._mapping, error)
            return
        raise SourceUnavailable(f"kafka commit failed: {error}") from exc

    def forget(self, tps: Iterable[Key]) -> None:
        """The partitions went to another member: never commit for them again."""
        for tp in tps:
            for table in (self._acked, self._pending, self._requested, self._in_flight,
                          self.committed):
                table.pop(tp, None)

    def position(self, tp: Key) -> int | None:
        """Where the group stands on `tp` as far as this consumer knows: the latest acked
        offset (committed or about to be), else the broker's committed offset."""
        acked = self._acked.get(tp)
        committed = self.committed.get(tp)
        if acked is None:
            return committed
        return acked[0] if committed is None else max(acked[0], committed)

    def unconfirmed(self) -> list[Key]:
        """Partitions with acked offsets the broker has not confirmed yet."""
        return [tp for tp, (offset, _) in self._acked.items()
                if self.committed.get(tp, -1) < offset]

    # ---- answers ---------------------------------------------------------------------

    def _check_answers(self, raise_errors: bool = True) -> None:
        fatal: KafkaError | None = None
        while self._answers:
            error, partitions = self._answers.popleft()
            retried = False
            for p in partitions:
                tp, offset = key(p), p.offset
                mine = self._in_flight.get(tp) == offset
                if mine:
                    del self._in_flight[tp]
                problem = error or p.error
                if problem is None:
                    self._failures = 0
                    self._confirm([(tp, offset)])
                elif mine:  # a synchronous commit's failure was raised where it was made
                    fatal = self._failed(tp, offset, problem) or fatal
                    retried = retried or (problem.code() not in LOST_GENERATION
                                          and is_retriable(problem))
            if retried:
                self._failures += 1
                if self._failures > self._max_failures:
                    fatal = fatal or error or partitions[0].error
        if fatal is not None and raise_errors:
            raise SourceUnavailable(f"kafka commit failed: {fatal}")

    def _failed(self, tp: Key, offset: int, error: KafkaError) -> KafkaError | None:
        """Handle one partition's failed async commit; the error when it is fatal."""
        if error.code() in LOST_GENERATION:
            log.warning("kafka commit refused after a rebalance mapping=%s: %s",
                        self._mapping, error)
            return None
        if not is_retriable(error):
            return error
        # Send it again unless a later offset of its partition went out since.
        acked = self._acked.get(tp)
        if acked is not None and self._requested.get(tp, -1) <= offset \
                and tp not in self._pending:
            self._pending[tp] = acked
        log.info("kafka async commit failed, retrying mapping=%s partition=%s: %s",
                 self._mapping, tp, error)
        return None

    def _confirm(self, offsets: Iterable[tuple[Key, int]]) -> None:
        for tp, offset in offsets:
            if tp in self._acked and self.committed.get(tp, -1) < offset:
                self.committed[tp] = offset


def _partitions(offsets: dict[Key, tuple[int, int | None]]) -> Sequence[TopicPartition]:
    """librdkafka's form; the leader epoch lets the broker fence a commit from a stale
    leader (KIP-320), when the record carried one."""
    return [TopicPartition(topic, partition, offset, leader_epoch=epoch)
            if epoch is not None and epoch >= 0 else TopicPartition(topic, partition, offset)
            for (topic, partition), (offset, epoch) in offsets.items()]
