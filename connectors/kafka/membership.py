"""The partitions this consumer owns, and the group's rebalances that change them.

librdkafka runs the rebalance callbacks on the thread that calls `consume()`, the reader
thread, inside `KafkaSource.poll()`:
- on revoke, the owned lanes go to `LaneListener.lanes_revoked` (their in-flight batches
  settle), their acked offsets are committed synchronously while this member still owns
  them, then they are forgotten;
- on lost (the group may have given them to others already), the lanes settle as on
  revoke but nothing is committed; what is acked meanwhile becomes this consumer's restart
  point, should the group hand the lanes back (positions.py);
- on assign (eager protocol), each partition's start offset is computed (positions.py)
  and the callback assigns the partitions itself with those offsets.

Records of a revoked partition still in librdkafka's queue are discarded by librdkafka;
records of lanes not owned any more are dropped by the source too (never acked: the new
owner reads them). A callback's failure is kept and raised from the next poll
(`take_failure`): librdkafka swallows what a callback raises.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from confluent_kafka import TopicPartition

from connectors.kafka.commits import Key, OffsetCommitter
from connectors.kafka.event import lane_name
from connectors.kafka.positions import StartPositions, committed_offsets, fresh_starts
from connectors.kafka.settings import KafkaSourceSettings
from esm.interfaces import LaneListener

log = logging.getLogger(__name__)


class Membership:
    """One consumer's owned lanes (`assigned`: lane -> (topic, partition)) and its
    rebalance callbacks; see the module docstring. Reader thread only."""

    def __init__(self, settings: KafkaSourceSettings, mapping: str, commits: OffsetCommitter,
                 forget_held: Callable[[list[str]], None]) -> None:
        self._settings = settings
        self._mapping = mapping
        self._commits = commits
        self._forget_held = forget_held  # the source's holding area lets the lanes go
        self.listener: LaneListener | None = None
        self.assigned: dict[str, Key] = {}
        self.starts = StartPositions()  # where an assigned lane reads from (positions.py)
        self.changed: set[str] = set()  # lanes revoked or lost inside the current consume
        self.closing = False
        self._failure: Exception | None = None

    def subscribe(self, consumer: Any) -> None:
        consumer.subscribe(list(self._settings.topics), on_assign=self.on_assign,
                           on_revoke=self.on_revoke, on_lost=self.on_lost)

    def take_failure(self) -> Exception | None:
        """What a callback raised since the last call, if anything."""
        failure, self._failure = self._failure, None
        return failure

    def clear(self) -> None:
        """The consumer closed: nothing is owned any more."""
        self.assigned.clear()
        self.starts = StartPositions()

    # ---- the callbacks ---------------------------------------------------------------

    def on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        if self.closing:
            return  # leaving the group: the core is gone
        try:
            self._assign(consumer, partitions)
        except Exception as exc:  # raised from poll(); librdkafka assigns the list as is
            self._failure = exc

    def on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        if self.closing:
            return  # close() committed already; the core is not told about its own exit
        try:
            self.revoke(consumer, [lane_name(p.topic, p.partition) for p in partitions])
        except Exception as exc:
            self._failure = exc

    def on_lost(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        """The group may have given the partitions to others already: commit nothing. The
        core still settles their in-flight batches first: what it acks meanwhile becomes
        this consumer's restart point, should the group hand the lanes back (positions.py)."""
        if self.closing:
            return
        lanes = [lane for p in partitions if (lane := lane_name(p.topic, p.partition))
                 in self.assigned]
        log.warning("kafka lanes lost mapping=%s lanes=%s", self._mapping, lanes)
        try:
            if self.listener is not None and lanes:
                self.listener.lanes_revoked(lanes)
        finally:
            self._forget(lanes)

    # ---- what they do ----------------------------------------------------------------

    def revoke(self, consumer: Any, lanes: list[str]) -> None:
        """In-flight batches of owned lanes settle and commit (synchronously) first, then
        the lanes go."""
        owned = [lane for lane in lanes if lane in self.assigned]
        if not owned:
            return
        log.info("kafka lanes revoked mapping=%s lanes=%s", self._mapping, owned)
        if self.listener is not None:
            self.listener.lanes_revoked(owned)
        tps = [self.assigned[lane] for lane in owned]
        try:
            self._commits.commit_sync(consumer, tps)
        finally:
            self._forget(owned)

    def _forget(self, lanes: list[str]) -> None:
        self.changed.update(lanes)
        tps = [self.assigned.pop(lane) for lane in lanes if lane in self.assigned]
        self._forget_held(lanes)
        self.starts.revoked((tp, self._commits.position(tp)) for tp in tps)
        self._commits.forget(tps)

    def _assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        """Assign the partitions at the offsets positions.py picks (never where librdkafka
        stood before the rebalance), then tell the core."""
        new = {lane_name(p.topic, p.partition): (p.topic, p.partition) for p in partitions}
        starts = self._start_offsets(consumer, list(new.values()))
        for p in partitions:
            p.offset = starts[(p.topic, p.partition)]
        consumer.assign(partitions)
        # librdkafka keeps a partition's pause across unassign/assign: the core starts the
        # lanes afresh, unpaused.
        consumer.resume(partitions)
        self.assigned.update(new)
        log.info("kafka lanes assigned mapping=%s lanes=%s", self._mapping, list(new))
        if self.listener is not None and new:
            self.listener.lanes_assigned(list(new))

    def _start_offsets(self, consumer: Any, tps: list[Key]) -> dict[Key, int]:
        """positions.py: the group's committed offset, else this consumer's restart point,
        else the starting position."""
        s = self._settings
        group = committed_offsets(consumer, tps, s.request_timeout_seconds)
        # Known as the group's position from now on (lag, and the restart point if the
        # lane is revoked before anything is acked).
        self._commits.committed.update({tp: o for tp, o in group.items() if o is not None})
        starts = self.starts.on_assigned(group)
        for tp, start in starts.items():
            if (offset := group.get(tp)) is not None and start > offset:
                self._commits.note(tp, start, None)  # acked here before: make it the group's
        fresh = [tp for tp in tps if tp not in starts]
        if fresh:
            starts.update(fresh_starts(consumer, fresh, s.starting_position,
                                       s.starting_position_timestamp, s.request_timeout_seconds))
        return starts
