"""Kafka source on kafka-python: a consumer group, one lane per topic-partition.

Guarantees (ESM-SPEC §4.4, §8 items 56-61):
- offsets are committed only when the core acks (success, filter rejection, durable dead
  letter), as last acked offset + 1 per partition: asynchronously, once per reader turn for
  every lane acked in it, and synchronously before partitions are revoked and on close
  (see commits.py);
- an existing group's committed offsets win; `starting_position` applies only to partitions
  the group never committed (TRIM_HORIZON → earliest, LATEST → latest, AT_TIMESTAMP → the
  first offset at or after the timestamp, else the end);
- paused partitions keep the consumer polling (heartbeats and group membership stay alive)
  and yield nothing; what was fetched for them is held and handed out after resume, and
  kafka-python pauses them only once the holding area is full (hold.py);
- acks for partitions this replica no longer owns are ignored (never committed);
- every assignment reads positions from the group again (positions.py): records dropped
  when a lane was revoked are read again even when the same consumer gets the lane back;
- with parallelization_factor > 1 a partition runs up to that many batches at once, one
  per key slot (records keep their order per key; null keys share one slot); the core
  acks only the partition's finished contiguous prefix, so the committed offset never
  passes a record still in flight in another slot.

Rebalances. kafka-python 3 runs rebalance callbacks on its own IO thread, where blocking
calls (commit) are forbidden, so the callbacks here only queue what changed. Before each
poll the reader thread checks whether the group wants a rejoin; if so it first hands every
owned lane to `LaneListener.lanes_revoked`, whose in-flight batches settle and commit while
this replica still owns them, and only then lets the poll join the group. A rebalance that
starts between that check and the poll is reported after the poll, when commits are no
longer possible: those in-flight batches are redelivered to the new owner (duplicates
bounded by in-flight batches, nothing lost).
"""

from __future__ import annotations

import base64
import collections
import logging
import os
import time
from collections.abc import Collection, Mapping, Sequence
from typing import Any, ClassVar

from confluent_kafka import KafkaException, Producer
from kafka import (  # type: ignore[import-untyped]
    ConsumerRebalanceListener,
    KafkaConsumer,
    TopicPartition,
)
from kafka import errors as kafka_errors

from connectors.kafka import bootstrap_errors
from connectors.kafka.bootstrap_errors import ConnectionErrors
from connectors.kafka.clients import base_config, producer_config, send_all
from connectors.kafka.commits import OffsetCommitter
from connectors.kafka.event import KafkaEvents, lane_name, parse_item_identifier, to_record
from connectors.kafka.hold import LaneHold
from connectors.kafka.internals import drop_parked_fetches, rejoin_pending
from connectors.kafka.positions import StartPositions
from connectors.kafka.security import client_config, client_options
from connectors.kafka.settings import KafkaSourceSettings, source_problems
from esm.errors import SourceUnavailable
from esm.interfaces import ConnectorContext, LaneListener, SourceTraits
from esm.records import Record

log = logging.getLogger(__name__)

_RESETS = {"TRIM_HORIZON": "earliest", "LATEST": "latest", "AT_TIMESTAMP": "earliest"}


class _QueueingRebalanceListener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Runs on kafka-python's IO thread: records changes for the reader thread, nothing else."""

    def __init__(self) -> None:
        self.changes: collections.deque[tuple[str, list[TopicPartition]]] = collections.deque()

    def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        self.changes.append(("revoked", list(revoked)))

    def on_partitions_lost(self, lost: Collection[TopicPartition]) -> None:
        self.changes.append(("revoked", list(lost)))

    def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        self.changes.append(("assigned", list(assigned)))


class KafkaSource:
    """Self-managed Kafka (ESM-SPEC §2.4 event shape, §4.4 error handling)."""

    Settings = KafkaSourceSettings
    traits: ClassVar[SourceTraits] = SourceTraits(
        family="stream", default_batch_size=100, max_batch_size=10000,
        default_batching_window_seconds=0.5, window_required_above_10=False,
        caps_infinite_retries_with_destination=True, batch_info_key="KafkaBatchInfo",
        lenient_filter_key="value", supports_parallelization_factor=True,
        supports_tumbling_windows=True,
    )

    def __init__(self, settings: KafkaSourceSettings, context: ConnectorContext, *,
                 consumer_factory: Any = KafkaConsumer,
                 environ: Mapping[str, str] | None = None) -> None:
        self._settings = settings
        self._context = context
        self._factory = consumer_factory
        self._security = client_options(settings, os.environ if environ is None else environ,
                                        owner=f"{context.mapping}: kafka source")
        self._client_security = client_config(
            settings, os.environ if environ is None else environ,
            owner=f"{context.mapping}: kafka source")
        self._events = KafkaEvents(settings.bootstrap_servers, settings.msk_cluster_arn)
        self._consumer: Any = None
        self._listener: LaneListener | None = None
        self._rebalance = _QueueingRebalanceListener()
        self._assigned: dict[str, TopicPartition] = {}
        self._hold = LaneHold()  # paused lanes: their records wait here (hold.py)
        self._starts = StartPositions()  # where an assigned lane reads from (positions.py)
        self._commits = OffsetCommitter(context.mapping,
                                        timeout_ms=int(settings.request_timeout_seconds * 1000))

    @classmethod
    def check_mapping(cls, settings: KafkaSourceSettings,
                      mapping_data: dict[str, Any]) -> list[str]:
        """Cross-field rules, checked at startup (see settings.source_problems)."""
        return source_problems(settings, mapping_data, os.environ, time.time())

    # ---- connection ------------------------------------------------------------------

    def consumer_options(self) -> dict[str, Any]:
        """Everything passed to KafkaConsumer; auto-commit is off: esm commits on ack."""
        s = self._settings
        return {
            "bootstrap_servers": list(s.bootstrap_servers), "group_id": s.consumer_group_id,
            "client_id": s.client_id, "enable_auto_commit": False,
            "auto_offset_reset": _RESETS[s.starting_position],
            "session_timeout_ms": int(s.session_timeout_seconds * 1000),
            "heartbeat_interval_ms": min(3000, int(s.session_timeout_seconds * 1000) // 3),
            "request_timeout_ms": int(s.request_timeout_seconds * 1000),
            # kafka-python keeps one fetch in flight per broker; on an idle partition the
            # broker holds it up to this long, and a partition just resumed waits behind it
            # (500 ms by default: seen as half-second stalls after back-pressure).
            "fetch_max_wait_ms": 100,
            **self._security,
        }

    def open(self, listener: LaneListener) -> None:
        self._listener = listener
        with bootstrap_errors.watch() as failures:
            try:
                consumer = self._factory(**self.consumer_options())
                consumer.subscribe(topics=list(self._settings.topics), listener=self._rebalance)
            except kafka_errors.KafkaError as exc:
                raise SourceUnavailable(f"kafka {self._events.bootstrap_servers}: "
                                        f"{failures.explain(exc)}") from exc
        self._consumer = consumer

    def close(self) -> None:
        """Commit the latest acked offsets synchronously, then leave the group."""
        consumer, self._consumer = self._consumer, None
        self._assigned.clear()
        self._hold = LaneHold()
        self._starts = StartPositions()
        if consumer is None:
            return
        try:
            self._commits.commit_sync(consumer, self._commits.unconfirmed())
        except SourceUnavailable as exc:  # the records come again: duplicates, no loss
            log.warning("kafka final commit failed mapping=%s: %s", self._context.mapping, exc)
        try:
            consumer.close(autocommit=False)
        except Exception:  # closing is best effort; the broker expires the member anyway
            log.warning("kafka consumer close failed mapping=%s", self._context.mapping,
                        exc_info=True)

    def _client(self) -> Any:
        if self._consumer is None:
            raise SourceUnavailable("kafka source is not open")
        return self._consumer

    # ---- reading ---------------------------------------------------------------------

    def poll(self, max_records: int, timeout_seconds: float) -> Sequence[Record]:
        consumer = self._client()
        self._commits.flush(consumer)  # every lane acked since the last turn, one request
        if self._assigned and rejoin_pending(consumer):
            self._revoke(list(self._assigned))
        hold = self._hold
        records = hold.release(max_records)  # held records of resumed lanes go first
        self._resume_hard(hold.to_resume_hard())
        room = max_records - len(records)
        if room <= 0:
            return records
        # Every owned lane paused (or records to hand out already): return at once and let
        # the reader wait for settlements instead of blocking here for the whole timeout.
        if records or (self._assigned and hold.paused.issuperset(self._assigned)):
            timeout_seconds = 0.0
        try:
            fetched = consumer.poll(timeout_ms=max(0, int(timeout_seconds * 1000)),
                                    max_records=room)
        except kafka_errors.KafkaError as exc:
            raise SourceUnavailable(f"kafka poll failed: {exc}") from exc
        sought = self._apply_rebalance_changes()
        now = self._context.clock.now()
        views = self._context.wants_filter_view
        for tp, messages in fetched.items():
            lane = lane_name(tp.topic, tp.partition)
            if lane in self._assigned and lane not in sought:
                if messages and self._starts.to_pin(tp, messages[0].offset):
                    self._commits.note(tp, messages[0].offset, -1)
                new = [to_record(m, now, views) for m in messages]
                if hold.waiting(lane):
                    hold.hold(lane, new)
                else:
                    records.extend(new)
        full = [self._assigned[lane] for lane in hold.to_pause_hard() if lane in self._assigned]
        if full:
            consumer.pause(*full)
        return records

    def _apply_rebalance_changes(self) -> set[str]:
        """Tell the reader about queued rebalance changes; return the lanes whose position
        was just set (their records from this poll were fetched from the old place)."""
        sought: set[str] = set()
        changes = self._rebalance.changes
        while changes:
            kind, tps = changes.popleft()
            if kind == "revoked":
                self._revoke([lane_name(tp.topic, tp.partition) for tp in tps])
            else:
                sought |= self._assign(tps)
        return sought

    def _revoke(self, lanes: list[str]) -> None:
        """In-flight batches of owned lanes settle and commit (synchronously) first, then
        the lanes go."""
        owned = [lane for lane in lanes if lane in self._assigned]
        if not owned:
            return
        log.info("kafka lanes revoked mapping=%s lanes=%s", self._context.mapping, owned)
        if self._listener is not None:
            self._listener.lanes_revoked(owned)
        tps = [self._assigned.pop(lane) for lane in owned]
        self._hold.forget(owned)
        try:
            self._commits.commit_sync(self._client(), tps)
        finally:
            self._starts.revoked((tp, self._commits.position(tp)) for tp in tps)
            self._commits.forget(tps)

    def _assign(self, tps: list[TopicPartition]) -> set[str]:
        new = {lane_name(tp.topic, tp.partition): tp for tp in tps}
        self._assigned.update(new)
        log.info("kafka lanes assigned mapping=%s lanes=%s", self._context.mapping, list(new))
        sought = self._position(tps)
        if self._listener is not None and new:
            self._listener.lanes_assigned(list(new))
        return sought

    def _position(self, tps: list[TopicPartition]) -> set[str]:
        """Set where each assigned partition reads from (positions.py: the group's
        committed offset, never the position kafka-python kept across the rebalance) and
        undo any pause kafka-python kept: the core starts the lanes afresh. Returns the
        lanes moved."""
        consumer = self._client()
        tps = [tp for tp in tps if tp in consumer.assignment()]  # a later change took it
        if not tps:
            return set()
        try:
            starts = self._starts.on_assigned({tp: consumer.committed(tp) for tp in tps})
            for tp, offset in starts.items():
                consumer.seek(tp, offset)
            fresh = [tp for tp in tps if tp not in starts]
            if fresh and self._settings.starting_position == "AT_TIMESTAMP":
                self._seek_to_timestamp(fresh)
                starts.update(dict.fromkeys(fresh, 0))
        except kafka_errors.KafkaError as exc:
            raise SourceUnavailable(f"kafka committed offsets lookup failed: {exc}") from exc
        consumer.resume(*tps)
        drop_parked_fetches(consumer, tps)
        return {lane_name(tp.topic, tp.partition) for tp in starts}

    def _seek_to_timestamp(self, fresh: list[TopicPartition]) -> None:
        """AT_TIMESTAMP for partitions the group never committed (ESM-SPEC §1.2)."""
        consumer = self._client()
        stamp_ms = int((self._settings.starting_position_timestamp or 0) * 1000)
        found = consumer.offsets_for_times({tp: stamp_ms for tp in fresh})
        for tp in fresh:
            hit = found.get(tp)
            if hit is None:
                consumer.seek_to_end(tp)
            else:
                consumer.seek(tp, hit.offset)

    # ---- settling --------------------------------------------------------------------

    def ack(self, records: Sequence[Record]) -> None:
        """Note last acked offset + 1 per owned partition; the next poll commits it
        (ESM-SPEC §4.4: committed only after success)."""
        for record in records:
            tp = self._assigned.get(record.lane)
            if tp is None:
                continue  # revoked: the new owner redelivers from the last commit
            epoch = record.handle if isinstance(record.handle, int) else -1
            self._commits.note(tp, int(record.position) + 1, epoch)

    def release(self, records: Sequence[Record], delay_seconds: float) -> None:
        """Stream family: the core never releases; a failed batch is retried in place."""

    def pause(self, lanes: Collection[str]) -> None:
        """Soft: the lanes' records are held back here; kafka-python pauses the partitions
        only once the holding area is full (hold.py)."""
        self._hold.pause(lane for lane in lanes if lane in self._assigned)

    def resume(self, lanes: Collection[str]) -> None:
        """Soft too: the lanes' held records are handed out first; once they are, the next
        poll resumes the partitions kafka-python paused (hold.py)."""
        self._hold.resume(lanes)

    def _resume_hard(self, lanes: list[str]) -> None:
        """Resume in kafka-python, and refetch what it parked for these partitions while
        paused (internals.drop_parked_fetches: otherwise a lane can stall)."""
        tps = [self._assigned[lane] for lane in lanes if lane in self._assigned]
        if tps:
            consumer = self._client()
            consumer.resume(*tps)
            drop_parked_fetches(consumer, tps)

    def lag(self) -> Mapping[str, float]:
        """Per owned partition: log end offset − acked position (ESM-SPEC §6 OffsetLag; an
        acked offset counts as processed even before its async commit is confirmed).
        Partitions the group never committed nor acked are left out (unknown)."""
        consumer = self._client()
        tps = dict(self._assigned)
        if not tps:
            return {}
        commits = self._commits
        try:
            ends = consumer.end_offsets(list(tps.values()))
            for tp in tps.values():
                if commits.position(tp) is None:
                    meta = consumer.committed(tp)
                    if meta is not None:
                        commits.committed[tp] = int(meta)
        except kafka_errors.KafkaError as exc:
            log.warning("kafka lag unknown mapping=%s: %s", self._context.mapping, exc)
            return {}
        return {lane: float(max(0, ends[tp] - position)) for lane, tp in tps.items()
                if (position := commits.position(tp)) is not None and tp in ends}

    def produce(self, records: Sequence[Mapping[str, Any]]) -> None:
        """`esm redrive --to source`: each record's key, value and headers (decoded from the
        event's base64 and signed-byte forms, ESM-SPEC §2.4) sent again to its topic, the
        partition chosen by the key as the original (Java) producer's would be; returns
        once the brokers acknowledged all (acks=all). Its own short-lived producer: the
        consumer's group membership is untouched."""
        s = self._settings
        errors = ConnectionErrors()
        config = producer_config(base_config(s.bootstrap_servers, f"{s.client_id}-redrive",
                                             self._client_security, errors),
                                 timeout_seconds=s.request_timeout_seconds)
        try:
            send_all(Producer(config), [(
                r.get("topic") or s.topics[0],
                None if r.get("key") is None else base64.b64decode(r["key"]),
                None if r.get("value") is None else base64.b64decode(r["value"]),
                [(name, bytes(b & 0xFF for b in data))
                 for header in r.get("headers") or () for name, data in header.items()])
                for r in records], s.request_timeout_seconds, errors)
        except KafkaException as exc:
            raise SourceUnavailable(f"kafka produce to {s.topics}: "
                                    f"{exc.args[0] if exc.args else exc}") from exc

    # ---- pure: events ------------------------------------------------------------------

    def build_event(self, records: Sequence[Record]) -> dict[str, Any]:
        return self._events.build_event(records)

    def fresh_event(self, records: Sequence[Record]) -> dict[str, Any]:
        return self._events.fresh_event(records)

    def event_overhead_bytes(self) -> int:
        return self._events.event_overhead_bytes()

    def item_identifier(self, value: object) -> str | None:
        return parse_item_identifier(value)

    def batch_info(self, records: Sequence[Record]) -> dict[str, Any]:
        return self._events.batch_info(records)

