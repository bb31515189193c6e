"""Kafka source on confluent-kafka (librdkafka): a consumer group, one lane per topic-partition.

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
  librdkafka pauses them only once the holding area is full (hold.py);
- acks for partitions this replica no longer owns are ignored (never committed);
- every assignment sets positions from the group again (positions.py): records dropped
  when a lane was revoked are read again even when the same consumer gets the lane back;
- with parallelization_factor > 1 a partition runs up to that many batches at once, one
  per key slot (records keep their order per key; null keys share one slot); the core
  acks only the partition's finished contiguous prefix, so the committed offset never
  passes a record still in flight in another slot.

Rebalances: membership.py (librdkafka calls them inside `consume()`, on the reader thread).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Collection, Mapping, Sequence
from typing import Any, ClassVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from connectors.kafka.bootstrap_errors import ConnectionErrors
from connectors.kafka.clients import base_config, producer_config, send_all
from connectors.kafka.commits import OffsetCommitter
from connectors.kafka.event import (
    KafkaEvents,
    message_of,
    parse_item_identifier,
    to_record,
)
from connectors.kafka.hold import LaneHold
from connectors.kafka.membership import Membership
from connectors.kafka.positions import partition_lags
from connectors.kafka.security import client_config
from connectors.kafka.settings import KafkaSourceSettings, consumer_config, source_problems
from esm.errors import SourceUnavailable
from esm.interfaces import ConnectorContext, LaneListener, SourceTraits
from esm.records import Record

log = logging.getLogger(__name__)

# How long closing waits for the group to take the partitions back before close().
_LEAVE_SECONDS = 5.0
# A message carrying one of these errors means this consumer cannot go on as it is.
_FATAL_MESSAGE_ERRORS = frozenset({KafkaError.TOPIC_AUTHORIZATION_FAILED,
                                   KafkaError.GROUP_AUTHORIZATION_FAILED,
                                   KafkaError._AUTHENTICATION,
                                   KafkaError.SASL_AUTHENTICATION_FAILED})


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
                 consumer_factory: Any = Consumer,
                 environ: Mapping[str, str] | None = None) -> None:
        self._settings = settings
        self._context = context
        self._factory = consumer_factory
        environ = os.environ if environ is None else environ
        self._client_security = client_config(settings, environ,
                                              owner=f"{context.mapping}: kafka source")
        self._events = KafkaEvents(settings.bootstrap_servers, settings.msk_cluster_arn)
        self._where = self._events.bootstrap_servers
        self._consumer: Any = None
        self._errors = ConnectionErrors()
        self._hold = LaneHold()  # paused lanes: their records wait here (hold.py)
        self._commits = OffsetCommitter(context.mapping)
        self._members = Membership(settings, context.mapping, self._commits,
                                   lambda lanes: self._hold.forget(lanes))

    @classmethod
    def check_mapping(cls, settings: KafkaSourceSettings,
                      mapping_data: dict[str, Any]) -> list[str]:
        """Cross-field rules, checked at startup (see settings.source_problems)."""
        return source_problems(settings, mapping_data, os.environ, time.time())

    # ---- connection ------------------------------------------------------------------

    def consumer_config(self) -> dict[str, Any]:
        """librdkafka's configuration: the shared base (clients.base_config), the
        consumer's own (settings.consumer_config) and the commit answers' callback."""
        s = self._settings
        return {**base_config(s.bootstrap_servers, s.client_id, self._client_security,
                              self._errors),
                **consumer_config(s), "on_commit": self._commits.on_commit}

    def open(self, listener: LaneListener) -> None:
        self._members.listener = listener
        try:
            consumer = self._factory(self.consumer_config())
        except KafkaException as exc:
            raise SourceUnavailable(f"kafka {self._where}: {exc}") from exc
        try:
            # librdkafka's constructor never fails on unreachable brokers: without this, a
            # wrong address or password would look like an idle topic.
            self._errors.check(consumer, self._settings.request_timeout_seconds, self._where)
            self._members.subscribe(consumer)
        except BaseException:
            consumer.close()
            raise
        self._consumer = consumer

    def close(self) -> None:
        """Commit the latest acked offsets synchronously, then leave the group (the revoke
        callback close serves does not reach the core)."""
        consumer, self._consumer = self._consumer, None
        if consumer is None:
            return
        self._members.closing = True
        try:
            self._commits.commit_sync(consumer, self._commits.unconfirmed())
        except SourceUnavailable as exc:  # the records come again: duplicates, no loss
            log.warning("kafka final commit failed mapping=%s: %s", self._context.mapping, exc)
        self._leave_group(consumer)
        try:
            consumer.close()
        except Exception:  # closing is best effort; the broker expires the member anyway
            log.warning("kafka consumer close failed mapping=%s", self._context.mapping,
                        exc_info=True)
        self._members.clear()
        self._hold = LaneHold()

    def _leave_group(self, consumer: Any) -> None:
        """Unsubscribe and serve the revoke here, before `close()`: librdkafka can hang for
        good when close() serves a rebalance whose callback assigns (confluentinc/
        librdkafka#4884), and confluent-kafka makes that call holding the GIL, so the whole
        daemon froze (seen in the churn scenario: a rebalance during a replica's
        shutdown). What these last calls return is never acked: the next owner reads it."""
        try:
            consumer.unsubscribe()
            deadline = time.monotonic() + _LEAVE_SECONDS
            while consumer.assignment() and time.monotonic() < deadline:
                consumer.consume(100, 0.1)
        except Exception as exc:  # close() below still leaves; the broker expires us anyway
            log.warning("kafka unsubscribe before close failed mapping=%s: %s",
                        self._context.mapping, exc)

    def _client(self) -> Any:
        if self._consumer is None:
            raise SourceUnavailable("kafka source is not open")
        return self._consumer

    # ---- reading ---------------------------------------------------------------------

    def poll(self, max_records: int, timeout_seconds: float) -> Sequence[Record]:
        consumer = self._client()
        self._errors.raise_if_fatal(self._where)
        self._commits.flush(consumer)  # every lane acked since the last turn, one request
        hold = self._hold
        records = hold.release(max_records)  # held records of resumed lanes go first
        self._resume_hard(hold.to_resume_hard())
        room = max_records - len(records)
        if room <= 0:
            return records
        # Every owned lane paused (or records to hand out already): return at once and let
        # the reader wait for settlements instead of blocking here for the whole timeout.
        assigned = self._members.assigned
        if records or (assigned and hold.paused.issuperset(assigned)):
            timeout_seconds = 0.0
        changed = self._members.changed
        changed.clear()
        try:
            messages = self._consume(consumer, room, max(0.0, timeout_seconds))
        except KafkaException as exc:
            raise SourceUnavailable(f"kafka {self._where}: poll failed: {exc}") from exc
        failure = self._members.take_failure()
        if failure is not None:  # a rebalance callback failed: the supervisor rebuilds
            raise SourceUnavailable(f"kafka {self._where}: rebalance: {failure}") from failure
        if changed:
            # Held records released above belong to the lane as it was before a rebalance
            # served inside consume(): the core dropped that lane's buffered batches, so
            # handing these out (even if the lane came straight back) would skip them.
            records = [r for r in records if r.lane not in changed]
        self._take(messages, records)
        full = [self._tp(lane) for lane in hold.to_pause_hard() if lane in assigned]
        if full:
            consumer.pause(full)
        return records

    @staticmethod
    def _consume(consumer: Any, room: int, timeout: float) -> list[Any]:
        """What librdkafka has queued, up to `room`; when nothing is, wait up to `timeout`
        for the first message only. (`consume(n, timeout)` itself waits until n messages
        or the timeout: with fewer queued the reader sat out the whole timeout, and the
        daemon ran at a tenth of the source's pace.)"""
        messages: list[Any] = consumer.consume(room, 0)
        if messages or timeout <= 0:
            return messages
        messages = consumer.consume(1, timeout)
        if messages and room > 1:
            messages += consumer.consume(room - 1, 0)
        return messages

    def _take(self, messages: list[Any], records: list[Record]) -> None:
        """Append the records of owned lanes (held when their lane waits)."""
        now = self._context.clock.now()
        views = self._context.wants_filter_view
        hold, assigned, starts = self._hold, self._members.assigned, self._members.starts
        for msg in messages:
            if (error := msg.error()) is not None:
                self._message_error(error)
                continue
            record = to_record(msg, now, views)
            lane = record.lane
            if lane not in assigned:
                continue  # revoked meanwhile: the new owner reads it
            tp = assigned[lane]
            if starts.to_pin(tp, msg.offset()):
                self._commits.note(tp, msg.offset(), None)
            if hold.waiting(lane):
                hold.hold(lane, [record])
            else:
                records.append(record)

    def _message_error(self, error: KafkaError) -> None:
        if error.fatal() or error.code() in _FATAL_MESSAGE_ERRORS:
            raise SourceUnavailable(f"kafka {self._where}: {error.str()}")
        log.warning("kafka consumer error mapping=%s: %s", self._context.mapping, error.str())

    # ---- settling --------------------------------------------------------------------

    def ack(self, records: Sequence[Record]) -> None:
        """Note last acked offset + 1 per owned partition; the next poll commits it
        (ESM-SPEC §4.4: committed only after success)."""
        for record in records:
            tp = self._members.assigned.get(record.lane)
            if tp is None:
                continue  # revoked: the new owner redelivers from the last commit
            epoch = record.handle if isinstance(record.handle, int) else None
            self._commits.note(tp, int(record.position) + 1, epoch)

    def release(self, records: Sequence[Record], delay_seconds: float) -> None:
        """Stream family: the core never releases; a failed batch is retried in place."""

    def pause(self, lanes: Collection[str]) -> None:
        """Soft: the lanes' records are held back here; librdkafka pauses the partitions
        only once the holding area is full (hold.py)."""
        self._hold.pause(lane for lane in lanes if lane in self._members.assigned)

    def resume(self, lanes: Collection[str]) -> None:
        """Soft too: the lanes' held records are handed out first; once they are, the next
        poll resumes the partitions librdkafka paused (hold.py)."""
        self._hold.resume(lanes)

    def _resume_hard(self, lanes: list[str]) -> None:
        """Resume the partitions in librdkafka, then seek each to its consumed position
        (where it would fetch from anyway). The seek is there to wake librdkafka's broker
        thread: a resume alone waits for its next wake-up, up to a second, before the
        partition is fetched again (tests/bench, Kafka at batch 10: 0.9 s stalls, 16k
        records/s; with the seek 90k; the same stall is confluent-kafka-go issue 630)."""
        tps = [self._tp(lane) for lane in lanes if lane in self._members.assigned]
        if not tps:
            return
        consumer = self._client()
        try:
            consumer.resume(tps)
            for position in consumer.position(tps):
                if position.offset >= 0:  # else unknown: nothing consumed, nothing to skip
                    consumer.seek(position)
        except KafkaException as exc:
            raise SourceUnavailable(f"kafka {self._where}: resume failed: {exc}") from exc

    def _tp(self, lane: str) -> TopicPartition:
        topic, partition = self._members.assigned[lane]
        return TopicPartition(topic, partition)

    def lag(self) -> Mapping[str, float]:
        """Per owned partition (positions.py); empty when the broker cannot be asked."""
        try:
            return partition_lags(self._client(), self._members.assigned, self._commits,
                                  self._settings.request_timeout_seconds)
        except KafkaException as exc:
            log.warning("kafka lag unknown mapping=%s: %s", self._context.mapping, exc)
            return {}

    def produce(self, records: Sequence[Mapping[str, Any]]) -> None:
        """`esm redrive --to source`: each record's key, value and headers sent again to
        its topic, the partition chosen by the key as the original (Java) producer's would
        be; returns once the brokers acknowledged all (acks=all). Its own short-lived
        producer: the consumer's group membership is untouched."""
        s = self._settings
        errors = ConnectionErrors()
        config = producer_config(base_config(s.bootstrap_servers, f"{s.client_id}-redrive",
                                             self._client_security, errors),
                                 timeout_seconds=s.request_timeout_seconds)
        try:
            send_all(Producer(config), [message_of(r, s.topics[0]) for r in records],
                     s.request_timeout_seconds, errors)
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

