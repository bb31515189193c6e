"""RabbitMQ source (`type: rabbitmq`, queue family) on pika's BlockingConnection.

Reading: one connection and one channel, owned by the reader thread like every client
(DESIGN §2); one consumer per queue with manual acks and `basic.qos` prefetch, so at most
`prefetch_count` unacked messages per queue are in esm at once (memory bounded by
configuration). Default prefetch: 2 x batch_size x concurrency, one batch in flight and the
next one filling. `poll` pumps the connection (pika calls back per delivery) and hands out
what arrived. The broker's `consumer_timeout` (30 min by default) must exceed the longest a
message can stay unacked (target timeout plus retry back-off): past it the broker closes
the channel, and the source reconnects as after any lost connection.

Lanes: a queue is a lane, so one batch per queue is in flight, AWS's concurrency of 1 per
RabbitMQ mapping (ESM-SPEC §2.6). `scaling_config.maximum_concurrency: N` (N > 1) splits
each queue into N slots (`<queue>#slot-<i>`), runs of `batch_size` deliveries each, so up to
N batches run at once; order is then not kept beyond one slot (queue family).

Settling (ESM-SPEC §2.6, §3.5): `ack` sends `basic.ack` after success, a filter rejection or
a durable on-failure notice (runs of the oldest tags as one multiple ack, see `tags.py`).
`release` returns every failed message with `basic.reject(requeue=True)`, one by one, after
the retry back-off (`delay_seconds`; the messages stay unacked meanwhile). Dead letters:
with `max_deliveries`, the core sends a message whose attempt number (`attempts.py`: failed
deliveries at the target, never the broker's x-delivery-count, which a lost connection
raises too) passed it to the on-failure destination, then acks it; without it the broker's
delivery limit and dead-letter exchange decide, as on AWS.

Failures: any client error becomes SourceUnavailable; the supervisor then builds a new
source and reconnects with back-off. The broker redelivers every unacked message of the lost
connection (`redelivered: true`), so nothing is lost; settlements for deliveries of an
older channel are ignored (their tags mean nothing on a new one).
"""

from __future__ import annotations

import functools
import logging
from collections import deque
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

from connectors.rabbitmq import event as ev
from connectors.rabbitmq.attempts import (
    FailedDeliveries,
    attempt_number,
    broker_count,
    count_key,
    record_count_key,
)
from connectors.rabbitmq.connection import (
    CLIENT_ERRORS,
    connect,
    connection_parameters,
    read_password,
)
from connectors.rabbitmq.lanes import SlotPlan
from connectors.rabbitmq.publish import publish_messages, split_event
from connectors.rabbitmq.settings import (
    MAX_PREFETCH,
    RabbitMQSettings,
    mapping_problems,
    parse_url,
    settings_problems,
)
from connectors.rabbitmq.tags import TagBook
from esm.errors import ConfigError, SourceUnavailable
from esm.interfaces import ConnectorContext, LaneListener, SourceTraits
from esm.records import Record

log = logging.getLogger(__name__)

# Polls shorter than this (the reader's 1 ms polls while batches are in flight) take what
# has arrived without waiting in the client: the reader waits for settlements itself.
_SHORTEST_WAIT_SECONDS = 0.005
# One raw delivery as pika hands it over: (method, properties, body).
_Raw = tuple[Any, Any, bytes]


class RabbitMQSource:
    """Consumes one or more queues of one virtual host (see the module docstring)."""

    Settings: ClassVar[type] = RabbitMQSettings
    traits: ClassVar[SourceTraits] = SourceTraits(
        family="queue", default_batch_size=100, max_batch_size=10000,
        default_batching_window_seconds=0.5, window_required_above_10=False,
        supports_on_failure_destination=True, batch_info_key="RabbitMQBatchInfo",
        lenient_filter_key="data")

    def __init__(self, settings: RabbitMQSettings, context: ConnectorContext,
                 environ: Mapping[str, str] | None = None, connector: Any = None) -> None:
        problems = settings_problems(settings)
        if problems:
            raise ConfigError(problems)
        self.settings = settings
        self.context = context
        self.address = parse_url(settings.url)
        self._parameters = connection_parameters(settings, read_password(settings, environ))
        self._connect = connector or connect
        self.arn = settings.event_source_arn or ev.default_arn(self.address.host,
                                                               self.address.vhost)
        self._keys = {q: ev.queue_key(q, self.address.vhost) for q in settings.queues}
        batch_size = context.batch_size or self.traits.default_batch_size
        concurrency = context.maximum_concurrency or 1
        self.prefetch_count = settings.prefetch_count or min(
            MAX_PREFETCH, 2 * batch_size * concurrency)
        self.plan = SlotPlan(settings.queues, concurrency, batch_size)
        self._overhead = ev.overhead_bytes(self.arn, list(self._keys.values()))
        self._buffer: dict[str, deque[_Raw]] = {q: deque() for q in settings.queues}
        self._tags = TagBook()
        self._failed = FailedDeliveries()
        self._connection: Any = None
        self._channel: Any = None
        self._info_channel: Any = None
        self._channel_id = 0
        self._cancelled_by_broker = ""
        self._consumers: dict[str, str] = {}  # consumer tag → queue

    @classmethod
    def check_mapping(cls, settings: RabbitMQSettings,
                      mapping_data: Mapping[str, Any]) -> list[str]:
        return mapping_problems(settings, mapping_data)

    # -- reader-thread methods ----------------------------------------------------------

    def open(self, listener: LaneListener) -> None:
        self._connection = self._connect(self._parameters, self.address)
        with self._translate("open"):
            channel = self._connection.channel()
            channel.basic_qos(prefetch_count=self.prefetch_count)
            channel.add_on_cancel_callback(self._cancelled)
            for queue in self.settings.queues:
                tag = channel.basic_consume(queue, functools.partial(self._delivered, queue),
                                            auto_ack=False)
                self._consumers[tag] = queue
            self._channel = channel
            self._channel_id = id(channel)
        log.info("rabbitmq: consuming %d queue(s) on %s:%d vhost %r, prefetch %d",
                 len(self._keys), self.address.host, self.address.port, self.address.vhost,
                 self.prefetch_count)
        listener.lanes_assigned(self.plan.lanes)

    def poll(self, max_records: int, timeout_seconds: float) -> Sequence[Record]:
        clock = self.context.clock
        with self._translate("poll"):
            self._send_due_rejects()
            self._connection.process_data_events(time_limit=0)
            if self._cancelled_by_broker:
                raise SourceUnavailable(
                    f"rabbitmq: the broker cancelled the consumer of {self._cancelled_by_broker}"
                    " (queue deleted, or its node went down); reconnecting")
            if not self._ready() and timeout_seconds >= _SHORTEST_WAIT_SECONDS:
                if self.plan.all_paused():
                    return []  # at once: the reader waits for the settlements that resume one
                wait = timeout_seconds
                due = self._tags.next_reject_at()
                if due is not None:
                    wait = max(0.0, min(wait, due - clock.monotonic()))
                self._connection.process_data_events(time_limit=wait)
                self._send_due_rejects()
        return self._take(max_records)

    def ack(self, records: Sequence[Record]) -> None:
        mine = [r for r in records if r.handle.channel == self._channel_id]
        if self._failed:
            self._failed.forget(record_count_key(r) for r in mine if r.delivery_count > 1)
        multiple, singles = self._tags.acks(r.handle.tag for r in mine)
        with self._translate("ack"):
            if multiple is not None:
                self._channel.basic_ack(multiple, multiple=True)
            for tag in singles:
                self._channel.basic_ack(tag)

    def release(self, records: Sequence[Record], delay_seconds: float) -> None:
        """Return the messages with basic.reject(requeue=True) after `delay_seconds`.

        The core releases for two reasons: the messages failed at the target (the failure
        policy's Release, with its back-off), or the mapping is stopping and hands back
        messages it never invoked (delay 0). Only the first counts as a failed delivery."""
        failed = delay_seconds > 0 or not self.context.stop.is_set()
        mine = [r for r in records if r.handle.channel == self._channel_id]
        queued = set(self._tags.schedule_rejects(
            (r.handle.tag for r in mine), self.context.clock.monotonic() + delay_seconds))
        if failed:
            for record in mine:
                if record.handle.tag in queued:
                    self._failed.failed(record_count_key(record))
        with self._translate("release"):
            self._send_due_rejects()

    def pause(self, lanes: Collection[str]) -> None:
        self.plan.pause(lanes)

    def resume(self, lanes: Collection[str]) -> None:
        self.plan.resume(lanes)

    def lag(self) -> Mapping[str, float]:
        """Per queue: messages ready in the broker, not yet delivered to any consumer (a
        passive declare on a second channel, so a vanished queue cannot close the
        consuming one). Messages delivered and not yet acked are not counted."""
        with self._translate("lag"):
            if self._info_channel is None or not self._info_channel.is_open:
                self._info_channel = self._connection.channel()
            return {q: float(self._info_channel.queue_declare(q, passive=True)
                             .method.message_count) for q in self.settings.queues}

    def close(self) -> None:
        """Close the connection: the broker requeues every message not acked yet."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            if connection.is_open:
                connection.close()
        except CLIENT_ERRORS as exc:
            log.debug("rabbitmq: closing the connection failed: %s", exc)

    def produce(self, records: Sequence[Mapping[str, Any]]) -> None:
        """`esm redrive --to source`: publish each message again to its queue."""
        publish_messages(self._parameters, self.address, self._keys, records)

    def event_records(self, event: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The messages of an `aws:rmq` event, each with its queue key, for `produce`."""
        return split_event(event)

    # -- pure methods -------------------------------------------------------------------

    def build_event(self, records: Sequence[Record]) -> dict[str, Any]:
        return ev.build_event(self.arn, ev.by_queue(records, "payload"))

    def encode_event(self, records: Sequence[Record]) -> bytes:
        """The encoded event, joined from the records' encodings (EncodesEvents)."""
        return ev.encode_event(self.arn, ev.by_queue(records, "encoded"))

    def event_overhead_bytes(self) -> int:
        return self._overhead

    def item_identifier(self, value: object) -> str | None:
        """batchItemFailures itemIdentifier = the message's `messageId` basic property."""
        return value if isinstance(value, str) and value else None

    def batch_info(self, records: Sequence[Record]) -> dict[str, Any]:
        """The notice's `RabbitMQBatchInfo` (an esm shape: AWS has no MQ destinations)."""
        return ev.batch_info(self.arn, records)

    # -- internals ----------------------------------------------------------------------

    def _delivered(self, queue: str, _channel: Any, method: Any, props: Any,
                   body: bytes) -> None:
        """pika's callback, on the reader thread inside process_data_events."""
        self._tags.delivered(method.delivery_tag)
        self._buffer[queue].append((method, props, body))

    def _cancelled(self, frame: Any) -> None:
        """pika's callback for a basic.cancel from the broker: no more deliveries will come
        on that consumer, so the next poll reconnects (which fails loudly if the queue is
        gone)."""
        self._cancelled_by_broker = self._consumers.get(frame.method.consumer_tag, "a queue")

    def _ready(self) -> bool:
        return any(self._buffer[q] for q in self.plan.open_queues())

    def _take(self, max_records: int) -> list[Record]:
        out: list[Record] = []
        now = self.context.clock.now()
        for queue in self.plan.open_queues():
            buffer = self._buffer[queue]
            key = self._keys[queue]
            while buffer and len(out) < max_records:
                lane, run = self.plan.lane_run(queue, min(len(buffer), max_records - len(out)))
                if lane is None:
                    break
                for _ in range(run):
                    out.append(self._record(key, lane, *buffer.popleft(), now))
        return out

    def _record(self, key: str, lane: str, method: Any, props: Any, body: bytes,
                now: float) -> Record:
        """One delivery as a record. Runs per message on the reader thread: a first
        delivery without headers (the common case) skips the attempt bookkeeping."""
        message = ev.message(props, method.redelivered, body)
        encoded = ev.dumps(message)
        tag = method.delivery_tag
        # item_id: what batchItemFailures names (messageId), and what the idempotency key
        # hashes, so a message without an id gets a stable stand-in no handler can name.
        item_id = props.message_id or count_key(key, None, message["data"])
        if method.redelivered or props.headers:
            failed = 0
            if method.redelivered and self._failed:  # esm counts only what failed before
                failed = self._failed.get(count_key(key, props.message_id, message["data"]))
            attempt = attempt_number(failed, broker_count(props.headers),
                                     self.settings.max_deliveries)
        else:
            attempt = 1
        return Record(
            lane=lane, position=str(tag), item_id=item_id, payload=message,
            size_bytes=len(encoded), timestamp=float(props.timestamp or now),
            filter_view=ev.FilterView(message, body), delivery_count=attempt,
            handle=ev.Delivery(tag, key, self._channel_id), encoded=encoded)

    def _send_due_rejects(self) -> None:
        for tag in self._tags.due_rejects(self.context.clock.monotonic()):
            self._channel.basic_reject(tag, requeue=True)

    @contextmanager
    def _translate(self, action: str) -> Iterator[None]:
        try:
            yield
        except CLIENT_ERRORS as exc:
            raise SourceUnavailable(
                f"rabbitmq {action} failed ({self.address.host}:{self.address.port} vhost "
                f"{self.address.vhost!r}): {type(exc).__name__}: {exc}") from exc

