"""Amazon SQS source (standard and FIFO queues) on boto3 — ESM-SPEC §2.1, §4.2, §5.

Polling: `pollers` ReceiveMessage long polls run in the background (10 messages each,
WaitTimeSeconds = min(wait_time_seconds, 20, the poll timeout)), like AWS's concurrent
pollers. `poll` hands out what has arrived; a long poll still running when `poll` times out
keeps going and its messages are handed out by a later `poll`. At most `pollers × 10`
received messages wait in the source, so memory is bounded by configuration.

Settling: `ack` deletes with DeleteMessageBatch in chunks of 10 (ESM-SPEC §4.2), retrying
failed entries; a delete that still fails is logged and the message comes back after its
visibility timeout (at-least-once). `release` changes visibility to the retry delay when
`backoff_on_failure` is on, else leaves the message to its visibility timeout. Filtered-out
messages are acked, hence deleted (ESM-SPEC §3.5). Lanes and FIFO ordering: see
`handout.py`. Dead letters: the queue's redrive policy by default (checklist 39); with
`max_receive_count` set, the core sends messages that failed at the target that often to
the on-failure destination and then acks (deletes) them; `delivery_count` counts failed
attempts, not SQS receives, so messages a killed daemon had received and never invoked are
not brought closer to a dead letter (`connectors.counting`). Visibility: every message
the source holds (read ahead, waiting for a lane, at the target) has its visibility timeout
extended until it is acked or released (`visibility.py`; `extend_visibility`).
"""

from __future__ import annotations

import base64
import logging
import math
import uuid
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from connectors.aws.clients import AwsSettings, make_client, region_for
from connectors.counting.failed import FailedAttempts
from connectors.sqs import ops as sqs_ops
from connectors.sqs.checks import check_mapping_rules
from connectors.sqs.handout import GroupHandout, SlotHandout
from connectors.sqs.records import (
    EVENT_OVERHEAD_BYTES,
    QueueInfo,
    Received,
    batch_info,
    build_event,
    convert,
    normalise_item_identifier,
)
from connectors.sqs.visibility import VisibilityKeeper
from esm.errors import SourceUnavailable
from esm.interfaces import ConnectorContext, LaneListener, SourceTraits
from esm.records import Record

log = logging.getLogger(__name__)

SETTLE_WORKERS = 4


@dataclass(frozen=True, slots=True, kw_only=True)
class SqsSettings(AwsSettings):
    """`source:` keys for `type: sqs`."""

    queue_url: str = field(metadata={"doc": "URL of the queue to read"})
    visibility_timeout_seconds: int | None = field(default=None, metadata={
        "min": 0, "max": 43200,
        "doc": "visibility timeout set on each receive; default: the queue's own"})
    max_receive_count: int | None = field(default=None, metadata={
        "min": 1, "max": 1000,
        "doc": "daemon-side dead-lettering after this many receives (needs an on_failure "
               "destination); default: leave it to the queue's redrive policy"})
    backoff_on_failure: bool = field(default=False, metadata={
        "doc": "on failure, make messages visible again after the retry backoff instead of "
               "the visibility timeout (ChangeMessageVisibility)"})
    extend_visibility: bool = field(default=True, metadata={
        "doc": "keep the messages esm holds (read ahead, waiting for a lane or for the "
               "target) invisible by extending their visibility timeout until they are "
               "deleted or released, so that a busy target never sees a message twice; "
               "false: AWS's behaviour, a message held past the timeout is delivered again"})
    slots: int = field(default=5, metadata={
        "min": 1, "max": 1000, "doc": "standard queues: lanes, i.e. concurrent batches"})
    pollers: int = field(default=5, metadata={
        "min": 1, "max": 50, "doc": "concurrent ReceiveMessage long polls"})
    wait_time_seconds: int = field(default=20, metadata={
        "min": 0, "max": 20, "doc": "long-poll wait per receive, also bounded by the poll "
                                     "timeout the core gives (shutdown budget)"})

    @property
    def max_deliveries(self) -> int | None:
        """The core's generic name for a queue source's daemon-side delivery limit."""
        return self.max_receive_count


class SqsSource:
    """Reads one SQS queue. Only the mapping's reader thread calls it."""

    Settings: ClassVar[type[SqsSettings]] = SqsSettings
    traits: ClassVar[SourceTraits] = SourceTraits(
        family="queue", default_batch_size=10, max_batch_size=10000,
        window_required_above_10=True, supports_on_failure_destination=True,
        batch_info_key="SQSBatchInfo")

    def __init__(self, settings: SqsSettings, context: ConnectorContext,
                 client: Any = None) -> None:
        self._settings = settings
        self._context = context
        self._client = client
        self._queue: QueueInfo | None = None
        self._handout: SlotHandout | GroupHandout = SlotHandout(settings.slots)
        self._receives: set[Future[tuple[float, list[dict[str, Any]]]]] = set()
        self._receive_pool: ThreadPoolExecutor | None = None
        self._settle_pool: ThreadPoolExecutor | None = None
        self.visibility_timeout_seconds: int | None = settings.visibility_timeout_seconds
        self.ordered_lanes = False
        self._attempts = FailedAttempts(settings.max_receive_count)
        self._keeper: VisibilityKeeper | None = None

    @classmethod
    def check_mapping(cls, settings: SqsSettings, mapping_data: Mapping[str, Any]) -> list[str]:
        """Cross-field rules (FIFO batch size, visibility vs target timeout, destinations)."""
        return check_mapping_rules(settings, mapping_data)

    # ---- lifecycle ------------------------------------------------------------------

    def open(self, listener: LaneListener) -> None:
        s = self._settings
        region = region_for(s, s.queue_url)
        if self._client is None:
            self._client = make_client("sqs", s, region=region,
                                       extra_read_timeout_seconds=s.wait_time_seconds,
                                       max_pool_connections=s.pollers + SETTLE_WORKERS + 2)
        attrs = sqs_ops.read_attributes(self._client, s.queue_url)
        self._queue = QueueInfo(arn=attrs.arn, region=region, fifo=attrs.fifo)
        if self.visibility_timeout_seconds is None:
            self.visibility_timeout_seconds = attrs.visibility_timeout_seconds
        if attrs.fifo:
            self._handout = GroupHandout()
            self.ordered_lanes = True  # the core then never invokes past a released record
        self._receive_pool = ThreadPoolExecutor(s.pollers, thread_name_prefix="sqs-receive")
        self._settle_pool = ThreadPoolExecutor(SETTLE_WORKERS, thread_name_prefix="sqs-settle")
        if s.extend_visibility and self.visibility_timeout_seconds:
            self._keeper = VisibilityKeeper(self._client, s.queue_url,
                                            self.visibility_timeout_seconds, self._context.clock)
            self._keeper.start(f"sqs-visibility-{self._context.mapping}")
        log.info("sqs source open: queue=%s fifo=%s visibility_timeout=%ss redrive=%s",
                 attrs.arn, attrs.fifo, self.visibility_timeout_seconds,
                 "yes" if attrs.redrive_policy else "no")
        if self._handout.lanes:
            listener.lanes_assigned(self._handout.lanes)

    def close(self) -> None:
        """Stop polling without waiting for running long polls (their messages reappear
        after the visibility timeout); make buffered, never handed-out messages visible."""
        for future in self._receives:
            future.cancel()
        self._receives.clear()
        if self._keeper is not None:  # first, so that no extension follows the reset below
            self._keeper.close()
        unsent = [r.receipt_handle for r in self._handout.drain()]
        if unsent and self._client is not None:
            sqs_ops.change_visibility(self._client, self._settings.queue_url, unsent, 0)
        for pool in (self._receive_pool, self._settle_pool):
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)

    # ---- reading --------------------------------------------------------------------

    def poll(self, max_records: int, timeout_seconds: float) -> Sequence[Record]:
        if self._context.stop.is_set() or max_records <= 0:
            return []
        self._collect()
        records = self._handout.take(max_records)
        if records:
            return records
        self._start_receives(timeout_seconds)
        if not self._receives:  # every lane paused and the buffer full: the reader waits
            return []  # for the settlements that resume one (a source cannot see them)
        wait(self._receives, timeout=max(0.0, timeout_seconds), return_when=FIRST_COMPLETED)
        self._collect()
        return self._handout.take(max_records)

    def _start_receives(self, timeout_seconds: float) -> None:
        s = self._settings
        assert self._receive_pool is not None, "poll() before open()"
        # Rounded up so that sub-second poll timeouts still long-poll instead of hammering the
        # queue with empty short polls; poll() itself never waits longer than its timeout.
        wait_seconds = min(s.wait_time_seconds, 20, math.ceil(max(0.0, timeout_seconds)))
        limit = s.pollers * 10
        while (len(self._receives) < s.pollers and self._handout.can_take_more()
               and self._handout.buffered() + 10 * len(self._receives) < limit):
            self._receives.add(self._receive_pool.submit(self._receive, wait_seconds))

    def _receive(self, wait_seconds: int) -> tuple[float, list[dict[str, Any]]]:
        """The messages, with when their visibility period began (about when SQS answered;
        taken here because the reader may collect the answer much later)."""
        s = self._settings
        messages = sqs_ops.receive(self._client, s.queue_url, 10, wait_seconds,
                                   visibility_timeout=s.visibility_timeout_seconds)
        return self._context.clock.monotonic(), messages

    def _collect(self) -> None:
        """Move finished receives into the handout; the first failure is raised after the
        successful answers are kept."""
        done = [f for f in self._receives if f.done()]
        error: BaseException | None = None
        for future in done:
            self._receives.discard(future)
            exc = future.exception()
            if exc is not None:
                error = error or exc
                continue
            assert self._queue is not None
            since, messages = future.result()
            received = [self._counted(convert(m, self._queue)) for m in messages]
            if self._keeper is not None:
                self._keeper.hold((r.receipt_handle for r in received), since)
            self._handout.add(received)
        if error is not None:
            raise error

    def _counted(self, received: Received) -> Received:
        """The message with its attempt at the target as `delivery_count` (connectors.counting)."""
        count = self._attempts.delivery_count(received.message_id, received.delivery_count)
        return received if count == received.delivery_count else \
            replace(received, delivery_count=count)

    # ---- settling -------------------------------------------------------------------

    def ack(self, records: Sequence[Record]) -> None:
        self._attempts.finished(r.item_id for r in records)
        if self._keeper is not None:
            self._keeper.let_go(r.handle for r in records)
        self._handout.settled(records)
        handles = [r.handle for r in records if not self._handout.consume_void(r)]
        if handles:
            sqs_ops.delete(self._client, self._settings.queue_url, handles, self._settle_pool)

    def release(self, records: Sequence[Record], delay_seconds: float) -> None:
        """Deliver again later. FIFO: the group's other outstanding records come back too,
        so the group is redelivered in order (see `handout.py`).

        The core releases for two reasons: the records failed at the target (with the
        backoff delay), or the mapping is stopping and hands back records it never invoked
        (delay 0). Only the first counts as a failed attempt."""
        self._handout.settled(records)
        fresh = [r for r in records if not self._handout.consume_void(r)]
        if delay_seconds > 0 or not self._context.stop.is_set():
            self._attempts.failed(r.item_id for r in fresh)
        voided = self._handout.void_rest_of_groups(fresh)
        if voided:
            log.info("sqs fifo: releasing %d later messages of %d failed group(s) to keep order",
                     len(voided), len({r.lane for r in fresh}))
        handles = [r.handle for r in (*fresh, *voided)]
        if not self._settings.backoff_on_failure:
            if self._keeper is not None:
                self._keeper.let_go(handles)
            return  # the visibility timeout brings them back (ESM-SPEC §4.2)
        if self._keeper is not None:
            self._keeper.released(handles, delay_seconds)
        if handles:
            sqs_ops.change_visibility(self._client, self._settings.queue_url, handles,
                                      delay_seconds, self._settle_pool)

    def pause(self, lanes: Collection[str]) -> None:
        self._handout.pause(lanes)

    def resume(self, lanes: Collection[str]) -> None:
        self._handout.resume(lanes)

    def produce(self, records: Sequence[Mapping[str, Any]]) -> None:
        """`esm redrive --to source`: SendMessageBatch of each record's body and message
        attributes (FIFO: its MessageGroupId, a fresh deduplication id), at most 10 entries
        and 256 KiB a call; entries SQS refuses are retried twice, then SourceUnavailable."""
        s, fifo = self._settings, self._settings.queue_url.endswith(".fifo")
        if self._client is None:
            self._client = make_client("sqs", s, region=region_for(s, s.queue_url))
        pending = [self._outgoing(n, r, fifo) for n, r in enumerate(records)]
        for _attempt in range(3):
            chunks: list[list[dict[str, Any]]] = [[]]
            for entry in pending:
                size = sum(len(e["MessageBody"]) for e in chunks[-1]) + len(entry["MessageBody"])
                if len(chunks[-1]) == 10 or (chunks[-1] and size > 262144):
                    chunks.append([])
                chunks[-1].append(entry)
            refused: list[dict[str, Any]] = []
            for chunk in filter(None, chunks):
                try:
                    answer = self._client.send_message_batch(QueueUrl=s.queue_url, Entries=chunk)
                except Exception as exc:  # ClientError / BotoCoreError, translated here
                    raise SourceUnavailable(f"SendMessageBatch to {s.queue_url}: {exc}") from exc
                ids = {f["Id"] for f in answer.get("Failed") or ()}
                refused += [e for e in chunk if e["Id"] in ids]
            if not refused:
                return
            pending = refused
        raise SourceUnavailable(f"SendMessageBatch to {s.queue_url}: {len(pending)} "
                                "record(s) refused three times")

    @staticmethod
    def _outgoing(n: int, record: Mapping[str, Any], fifo: bool) -> dict[str, Any]:
        """One SendMessageBatch entry from an event record (ESM-SPEC §2.1 shapes)."""
        attributes: dict[str, Any] = {}
        for name, value in (record.get("messageAttributes") or {}).items():
            attributes[name] = {"DataType": value.get("dataType", "String")}
            if value.get("stringValue") is not None:
                attributes[name]["StringValue"] = value["stringValue"]
            if value.get("binaryValue") is not None:
                attributes[name]["BinaryValue"] = base64.b64decode(value["binaryValue"])
        entry: dict[str, Any] = {"Id": str(n), "MessageBody": str(record.get("body", ""))}
        if attributes:
            entry["MessageAttributes"] = attributes
        if fifo:
            group = (record.get("attributes") or {}).get("MessageGroupId") or "esm-redrive"
            entry.update(MessageGroupId=group, MessageDeduplicationId=uuid.uuid4().hex)
        return entry

    # ---- events and metadata --------------------------------------------------------

    def build_event(self, records: Sequence[Record]) -> dict[str, Any]:
        return build_event(records)

    def event_overhead_bytes(self) -> int:
        return EVENT_OVERHEAD_BYTES

    def item_identifier(self, value: object) -> str | None:
        return normalise_item_identifier(value)

    def batch_info(self, records: Sequence[Record]) -> dict[str, Any]:
        queue = self._queue or QueueInfo(arn="", region="", fifo=False)
        return batch_info(records, queue, self._settings.queue_url)

    def lag(self) -> Mapping[str, float]:
        """Queue depth: ApproximateNumberOfMessages + ApproximateNumberOfMessagesNotVisible."""
        if self._client is None:
            return {}
        depth = sqs_ops.queue_depth(self._client, self._settings.queue_url)
        return {} if depth is None else {"queue": float(depth)}
