"""Extension points, as Protocols. Connectors implement these; the core calls them.

Threading contract: a mapping's reader thread owns its `Source` and is the only thread that
calls it. Targets and destinations are called from lane-worker threads and must be safe to
call from several threads at once (one instance per mapping).

Construction: every connector class is built as `cls(settings, context)`, where `settings`
is an instance of the class attribute `Settings` (a frozen dataclass parsed strictly from
the mapping's YAML, see `esm.config.schema`) and `context` is a `ConnectorContext`. Constructors
must not do I/O; `Source.open` / the first call does.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

from esm.records import Event, Family, InvokeResult, Record


class Clock(Protocol):
    """Time, injected so that every loop runs under a fake clock in unit tests."""

    def now(self) -> float:
        """Wall-clock epoch seconds (record ages, notice timestamps)."""

    def monotonic(self) -> float:
        """Monotonic seconds (windows, timeouts, backoff)."""

    def wait(self, stop: threading.Event, seconds: float) -> bool:
        """Wait up to `seconds` or until `stop` is set; True if `stop` is set."""


class CheckpointStore(Protocol):
    """Lane positions for sources without broker-side offsets (DynamoDB Streams, Kinesis)."""

    def load(self, mapping: str, lane: str) -> str | None: ...

    def save(self, mapping: str, lane: str, position: str) -> None: ...


@dataclass(frozen=True, slots=True)
class ConnectorContext:
    """What the daemon hands every connector it builds.

    batch_size / maximum_concurrency: the mapping's effective batch size and its
    `scaling_config.maximum_concurrency` (None when unset), for sources that size what they
    read ahead by them (RabbitMQ's prefetch and slots). None when not built for a mapping
    run (redrive, tools).
    wants_filter_view: whether the mapping filters; when False, sources skip building
    `Record.filter_view` (decoding bodies for a matcher that never runs)."""

    mapping: str
    stop: threading.Event
    clock: Clock
    checkpoints: CheckpointStore | None = None
    batch_size: int | None = None
    maximum_concurrency: int | None = None
    wants_filter_view: bool = True


@dataclass(frozen=True, slots=True)
class SourceTraits:
    """Static facts about a source type, used by config validation and the core.

    family: "stream" (ordered lanes, position checkpoint, retries block the lane) or
        "queue" (per-record ack, failed records redelivered by the broker) — DESIGN §3.
    default_batch_size / max_batch_size: AWS defaults and limits (ESM-SPEC §1.2).
    default_batching_window_seconds: 0, or 0.5 for Kafka.
    window_required_above_10: BatchSize > 10 needs a window ≥ 1 s (SQS, Kinesis, DynamoDB).
    supports_on_failure_destination: DestinationConfig.OnFailure allowed (not SQS).
    caps_infinite_retries_with_destination: Kafka's rule, infinite retries + destination
        means 10 retries (ESM-SPEC §4.4).
    batch_info_key: name of the notice's batch-info object (KafkaBatchInfo, ...).
    lenient_filter_key: the data key whose filter clause is ignored, not a reason to drop,
        when its format does not match the record's (Kafka `value`, ESM-SPEC §3.4).
    supports_parallelization_factor: records carry an `ordering_key` (Kinesis partition key,
        DynamoDB item key, Kafka record key, a Redis entry field), so
        parallelization_factor > 1 can keep order per key (ESM-SPEC §1.2; beyond AWS for
        Kafka and Redis Streams).
    supports_tumbling_windows: tumbling_window_in_seconds > 0 is accepted (Kinesis, DynamoDB
        Streams; ESM-SPEC §2.5; Kafka beyond AWS).
    keeps_windows: the source implements `KeepsWindows` (window state with its
        checkpoints); otherwise the mapping names a `window_state` store.
    """

    family: Family
    default_batch_size: int = 100
    max_batch_size: int = 10000
    default_batching_window_seconds: float = 0.0
    window_required_above_10: bool = True
    supports_on_failure_destination: bool = True
    caps_infinite_retries_with_destination: bool = False
    batch_info_key: str = "BatchInfo"
    lenient_filter_key: str | None = None
    supports_parallelization_factor: bool = False
    supports_tumbling_windows: bool = False
    keeps_windows: bool = False


class LaneListener(Protocol):
    """Implemented by the reader; a source calls it (on the reader thread) when the broker
    changes which lanes this replica owns (Kafka rebalance, lease taken or lost)."""

    def lanes_assigned(self, lanes: Collection[str]) -> None: ...

    def lanes_revoked(self, lanes: Collection[str]) -> None:
        """Blocks until in-flight batches of `lanes` are settled (or the drain budget runs
        out); afterwards the reader forgets those lanes and never acks for them again."""

    def lane_ending(self, lane: str) -> None:
        """The lane was read to its end and every record acked (a closed shard), and is
        about to be finished for good: blocks while the reader closes the lane's tumbling
        window with its final invoke (within the drain budget)."""


class KeepsWindows(Protocol):
    """Optional on a source with tumbling windows (reader thread only): a lane's window
    document (JSON-able mapping, esm.windows.book) is kept with its checkpoint, so a
    restart or the next owner of the lane resumes the window with its state."""

    def load_window(self, lane: str) -> Mapping[str, Any] | None: ...

    def save_window(self, lane: str, document: Mapping[str, Any]) -> None:
        """Durable before it returns; ignored (not raised) for a lane no longer owned."""


@runtime_checkable
class Source(Protocol):
    """Reads records from a broker. The client-touching methods (open, poll, ack, release,
    pause, resume, lag, close) are called only from the mapping's reader thread. The pure
    methods (build_event, event_overhead_bytes, item_identifier, batch_info) use no client
    and may be called from lane-worker threads."""

    traits: ClassVar[SourceTraits]
    # Optional instance attribute `ordered_lanes: bool` (queue family, e.g. SQS FIFO): when
    # a record of a lane is released, the core releases that lane's buffered records too
    # instead of invoking them out of order.

    def open(self, listener: LaneListener) -> None:
        """Connect, join the group / take leases. May raise SourceUnavailable."""

    def poll(self, max_records: int, timeout_seconds: float) -> Sequence[Record]:
        """Up to `max_records` new records, in lane order; waits at most `timeout_seconds`.
        Paused lanes yield nothing; when every lane is paused, return at once: what resumes
        a lane is a settlement, and the reader waits for those itself (a source waiting out
        its timeout would hold a finished lane idle). May raise SourceUnavailable."""

    def ack(self, records: Sequence[Record]) -> None:
        """Finished for good. Stream family: the core passes, per lane, a contiguous run in
        lane order, so committing the last record's position is correct."""

    def release(self, records: Sequence[Record], delay_seconds: float) -> None:
        """Queue family: make these records deliverable again (after `delay_seconds` where
        the broker supports it). Stream sources never receive release."""

    def pause(self, lanes: Collection[str]) -> None: ...

    def resume(self, lanes: Collection[str]) -> None: ...

    def build_event(self, records: Sequence[Record]) -> dict[str, Any]:
        """The AWS-shaped event document for a batch (ESM-SPEC §2)."""

    def event_overhead_bytes(self) -> int:
        """Encoded size of an event with no records (envelope), for the 6 MB limit."""

    def item_identifier(self, value: object) -> str | None:
        """Normalise one `batchItemFailures[].itemIdentifier` to a `Record.item_id`, or None
        when it is malformed (empty, null, wrong type) — a whole-batch failure."""

    def batch_info(self, records: Sequence[Record]) -> dict[str, Any]:
        """The notice's `<traits.batch_info_key>` object for these records (ESM-SPEC §4.5)."""

    def lag(self) -> Mapping[str, float]:
        """Records not yet processed, per lane (offset lag, pending + undelivered); may be
        empty when unknown. Called by the reader at most every few seconds."""

    def close(self) -> None: ...


class EncodesEvents(Protocol):
    """Optional on a Source: the encoded event for a batch, byte for byte
    `orjson.dumps(build_event(records))`, made cheaper (e.g. from `Record.encoded`)."""

    def encode_event(self, records: Sequence[Record]) -> bytes: ...


class FreshEvents(Protocol):
    """Optional on a Source: `build_event(records)` as a new document sharing no mutable
    part (dict, list) with the records, for a target that hands it to user code: cheaper
    than encoding the event and decoding it again."""

    def fresh_event(self, records: Sequence[Record]) -> dict[str, Any]: ...


class Target(Protocol):
    """Invokes the function synchronously. Safe to call from several threads.

    A target may declare `reads_body = False` (class attribute): it reads only
    `Event.document`, so the invoker gives it an owned document (`FreshEvents`) and encodes
    no body when the batch's size estimate is within the payload limit."""

    def invoke(self, event: Event, timeout_seconds: float) -> InvokeResult:
        """Returned or FunctionFailed; raises InvokeError when the event never reached the
        function (DESIGN §6)."""

    def close(self) -> None: ...


class InlineTarget(Target, Protocol):
    """Optional on a target: it can run the function on the calling thread and leave the
    timeout to the caller. The lane worker then calls `invoke_inline` under an overrun
    watch (esm.threads.overruns) instead of `invoke`, saving the hand-offs to a helper
    thread; when the call overruns `timeout_seconds`, `overrun_result` is its result and
    the call's own result, whenever it comes, is dropped."""

    def invoke_inline(self, event: Event, timeout_seconds: float) -> InvokeResult:
        """Like `invoke`, on this thread, without enforcing `timeout_seconds`."""

    def overrun_result(self, timeout_seconds: float) -> InvokeResult:
        """The result of a call that overran `timeout_seconds`."""


class Destination(Protocol):
    """Where notices for discarded records go. Safe to call from several threads."""

    def send(self, notice: Mapping[str, Any], records: Sequence[Record]) -> None:
        """Durable before it returns; raises DestinationError otherwise. `records` are the
        records the notice is about (Kafka topic destination keys one message per record)."""

    def close(self) -> None: ...
