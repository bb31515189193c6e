"""Amazon MQ for ActiveMQ source over AMQP 1.0 (python-qpid-proton) — ESM-SPEC §2.6.

Reading: the reader thread owns the connection (`link.py`) and pumps it in `poll`; link
credit keeps at most `credit` received-but-unhanded messages. Lanes are `slots` slots
(`slot-0 …`); each poll's messages go to the next unpaused slot, so `slots` batches run at
once (AWS's concurrency for ActiveMQ is 5).

Settling, per delivery (ESM-SPEC §2.6, DESIGN §3):
- ack (success, filtered out, or dead-lettered to the on-failure destination) → ACCEPTED;
- release (failed) → MODIFIED with delivery-failed after `redelivery_delay_seconds`, so the
  broker counts the delivery (a constant delay, as ActiveMQ's default redelivery policy that
  AWS uses: the mapping's exponential `retry_backoff` does not apply); a message whose
  delivery failed `maximum_redeliveries + 1` times (the 7th, by default) is REJECTED, and
  ActiveMQ moves it to its DLQ, as AWS does. With an on-failure destination the core sends
  such messages there first (`max_deliveries_with_destination`) and acks them instead.
The attempt a record is (`delivery_count`) is esm's count of its failed deliveries plus one
(`connectors.counting`), not the broker's delivery-count, which a lost connection's returns
raise as well: a crashing daemon must not bring healthy messages closer to the DLQ.
A failed message waiting out its delay stays unsettled, so a lost connection (or a
restart) hands it and every other unsettled delivery back to the broker: nothing is lost.

Records carry an integer token, not proton's delivery: the deliveries stay in this source,
so they are created, settled and freed on the reader thread alone. (A record's last
reference may go on any thread; when records held deliveries, one freed on a lane thread
while the reader pumped the connection crashed the process in proton's C library.)
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Collection, Mapping, Sequence
from typing import Any, ClassVar

from connectors.activemq import event
from connectors.activemq.link import QueueLink
from connectors.activemq.settings import ActiveMQSettings, mapping_problems, public_url
from connectors.counting.failed import FailedAttempts
from esm.errors import SourceUnavailable
from esm.interfaces import ConnectorContext, LaneListener, SourceTraits
from esm.records import Record

log = logging.getLogger(__name__)


class ActiveMQSource:
    """Reads one ActiveMQ queue. Only the mapping's reader thread calls it."""

    Settings: ClassVar[type[ActiveMQSettings]] = ActiveMQSettings
    traits: ClassVar[SourceTraits] = SourceTraits(
        family="queue", default_batch_size=100, max_batch_size=10000,
        default_batching_window_seconds=0.5, window_required_above_10=False,
        supports_on_failure_destination=True, batch_info_key="ActiveMQBatchInfo",
        lenient_filter_key="data")

    def __init__(self, settings: ActiveMQSettings, context: ConnectorContext) -> None:
        self._settings = settings
        self._context = context
        self._password = os.environ.get(settings.password_env) if settings.password_env else None
        self.event_source_arn = settings.broker_arn or public_url(settings.url)
        self._lanes = tuple(f"slot-{i}" for i in range(settings.slots))
        self._paused: set[str] = set()
        self._next_lane = 0
        self._link: QueueLink | None = None
        self._delayed: list[tuple[float, Any]] = []  # (due monotonic, delivery), due order
        self._deliveries: dict[int, Any] = {}  # a record's token → its unsettled delivery
        self._tokens = itertools.count()
        self._overhead = sum(len(part) for part in event.envelope(self.event_source_arn))
        self._attempts = FailedAttempts(settings.maximum_redeliveries + 1)

    @classmethod
    def check_mapping(cls, settings: ActiveMQSettings,
                      mapping_data: Mapping[str, Any]) -> list[str]:
        return mapping_problems(settings, mapping_data)

    # ---- lifecycle ------------------------------------------------------------------

    def open(self, listener: LaneListener) -> None:
        self._link = self._connect()
        log.info("activemq source open: %s queue=%s credit=%d slots=%d",
                 public_url(self._settings.url), self._settings.queue, self._settings.credit,
                 self._settings.slots)
        listener.lanes_assigned(self._lanes)

    def _connect(self) -> QueueLink:
        s = self._settings
        return QueueLink(s.url, s.queue, user=s.username, password=self._password,
                         credit=s.credit, timeout_seconds=s.connect_timeout_seconds,
                         idle_timeout_seconds=s.idle_timeout_seconds)

    def close(self) -> None:
        """Close the connection; unsettled deliveries (in flight or waiting out a redelivery
        delay) return to the queue."""
        if self._link is not None:
            self._link.close()
            self._link = None
        self._deliveries.clear()  # handed back with the connection; freed on this thread
        self._delayed.clear()

    # ---- reading --------------------------------------------------------------------

    def poll(self, max_records: int, timeout_seconds: float) -> Sequence[Record]:
        link = self._require_link()
        lane = self._free_lane()
        if lane is None or max_records <= 0 or self._context.stop.is_set():
            link.pump(0.0, until_message=False)  # still send settlements and heartbeats
            self._settle_due()
            return []
        self._settle_due()
        if not link.buffered():
            link.pump(self._wait_seconds(timeout_seconds))
            self._settle_due()
        received_ms = int(time.time() * 1000)
        queue = self._settings.queue
        # Each record's attempt is as esm counts it (failed deliveries at the target,
        # `connectors.counting`), not the broker's delivery-count, which a lost connection
        # raises too.
        attempt = self._attempts.delivery_count
        records = []
        for message, delivery in link.take(max_records):
            token = next(self._tokens)
            self._deliveries[token] = delivery
            records.append(event.to_record(message, queue, lane, received_ms, token, attempt))
        return records

    def _wait_seconds(self, timeout_seconds: float) -> float:
        """Wait no longer than the next delayed settlement is due."""
        wait = max(0.0, timeout_seconds)
        if self._delayed:
            wait = min(wait, max(0.0, self._delayed[0][0] - time.monotonic()))
        return wait

    def _free_lane(self) -> str | None:
        for _ in self._lanes:
            lane = self._lanes[self._next_lane]
            self._next_lane = (self._next_lane + 1) % len(self._lanes)
            if lane not in self._paused:
                return lane
        return None

    def _require_link(self) -> QueueLink:
        if self._link is None:
            raise SourceUnavailable("activemq: source used before open() or after close()")
        return self._link

    # ---- settling -------------------------------------------------------------------

    def ack(self, records: Sequence[Record]) -> None:
        for delivery in self._take_deliveries(records):
            QueueLink.accept(delivery)
        self._attempts.finished(event.attempt_key(r.payload) for r in records)
        self._flush()

    def release(self, records: Sequence[Record], delay_seconds: float) -> None:
        """Failed deliveries: MODIFIED(delivery-failed) after `redelivery_delay_seconds` (the
        core's `delay_seconds` is its exponential backoff, which AWS's ActiveMQ redelivery
        does not have), or REJECTED (the broker's DLQ) after `maximum_redeliveries` failed
        redeliveries. A stopping mapping's hand-back (delay 0) is no failed delivery."""
        limit = self._settings.maximum_redeliveries
        due = time.monotonic() + self._settings.redelivery_delay_seconds
        spent = [r for r in records if r.delivery_count > limit]
        for delivery in self._take_deliveries(spent):
            QueueLink.reject(delivery)
        self._attempts.finished(event.attempt_key(r.payload) for r in spent)
        if delay_seconds > 0 or not self._context.stop.is_set():
            self._attempts.failed(event.attempt_key(r.payload) for r in records
                                  if r.delivery_count <= limit)
        if spent:
            log.warning("activemq: %d message(s) failed %d deliveries: rejected to the broker's "
                        "dead-letter queue", len(spent), limit + 1)
        again = [r for r in records if r.delivery_count <= limit]
        self._delayed.extend((due, delivery) for delivery in self._take_deliveries(again))
        self._delayed.sort(key=lambda item: item[0])
        self._settle_due()
        self._flush()

    def _take_deliveries(self, records: Sequence[Record]) -> list[Any]:
        """The records' unsettled deliveries, now this call's to settle (a token already
        settled, or from before a reconnect, has none)."""
        deliveries = self._deliveries
        return [d for r in records if (d := deliveries.pop(r.handle, None)) is not None]

    def _settle_due(self) -> None:
        now = time.monotonic()
        while self._delayed and self._delayed[0][0] <= now:
            QueueLink.failed(self._delayed.pop(0)[1])

    def _flush(self) -> None:
        if self._link is not None:
            self._link.pump(0.0, until_message=False)

    def pause(self, lanes: Collection[str]) -> None:
        self._paused.update(lanes)

    def resume(self, lanes: Collection[str]) -> None:
        self._paused.difference_update(lanes)

    # ---- events and metadata --------------------------------------------------------

    def build_event(self, records: Sequence[Record]) -> dict[str, Any]:
        return event.build_event(records, self.event_source_arn)

    def encode_event(self, records: Sequence[Record]) -> bytes:
        return event.encode_event(records, self.event_source_arn)

    def event_overhead_bytes(self) -> int:
        return self._overhead

    def item_identifier(self, value: object) -> str | None:
        """AWS takes no partial batch responses from MQ mappings; a messageID is accepted
        for handlers that send one anyway (the whole batch is otherwise retried)."""
        return value if isinstance(value, str) and value else None

    def batch_info(self, records: Sequence[Record]) -> dict[str, Any]:
        return event.batch_info(records, self.event_source_arn, self._settings.queue)

    def lag(self) -> Mapping[str, float]:
        return {}

    def produce(self, records: Sequence[Mapping[str, Any]]) -> None:
        """`esm redrive --to source`: send each event message back to the queue, body,
        properties and headers as they were (`sending.py`)."""
        from connectors.activemq.sending import send_messages

        s = self._settings
        send_messages(s.url, s.queue, [dict(r) for r in records], user=s.username,
                      password=self._password, timeout_seconds=s.connect_timeout_seconds)
