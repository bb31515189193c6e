"""Values that flow through a mapping: records, batches, events, invoke results, outcomes
and the failure policy's steps. All are frozen slotted dataclasses (Record is frozen for
the type checker only, see `_hot_value`).

Records and batches compare by identity (`eq=False`): two deliveries of the same broker
entry are different records, and records live in sets and dict keys on hot paths.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, dataclass_transform

import orjson

Family = Literal["stream", "queue"]

# The synchronous invoke payload limit (ESM-SPEC §1.4): 6 MB, envelope included.
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024


_T = TypeVar("_T")


@dataclass_transform(frozen_default=True)
def _hot_value(cls: type[_T]) -> type[_T]:
    """A slotted dataclass compared by identity, frozen for the type checker only.

    Why: a frozen dataclass's __init__ sets each field through object.__setattr__, which
    made building a Record about 1 µs (ten fields), against 0.2 µs for plain slot
    assignment; sources build one per record read. mypy --strict (tests/unit/
    test_static_checks.py) rejects any assignment to a field, as it would for frozen=True."""
    return dataclass(slots=True, eq=False)(cls)


@_hot_value
class Record:
    """One item read from a broker.

    lane: unit of ordering (partition, shard, stream key, message group, slot).
    position: where the lane resumes after this record (offset, sequence number, entry id).
    item_id: identity matched against `batchItemFailures[].itemIdentifier`, normalised by
        `Source.item_identifier`.
    payload: the AWS-shaped element placed in the event for this record.
    filter_view: the decoded document given to the filter matcher (ESM-SPEC §3.4); None
        means "use payload".
    size_bytes: encoded JSON size of `payload` inside the event, for the 6 MB limit.
    timestamp: epoch seconds at which the broker received the record (max record age).
    delivery_count: the delivery attempt this is (queues), 1 on first delivery; what
        `max_deliveries` counts. Redis Streams counts only deliveries that failed at the
        target (a crash does not count); SQS reports its receive count.
    ordering_key: key that keeps order when parallelization_factor > 1 (partition key,
        item key); None means the whole lane is one key.
    handle: source-private data (receipt handle, TopicPartition, ...).
    encoded: `payload` as JSON bytes, when the source encoded it already (to measure
        size_bytes); an event whose records all have it is joined from them instead of
        encoded again (`records_event_body`).
    """

    lane: str
    position: str
    item_id: str
    payload: Mapping[str, Any]
    size_bytes: int
    timestamp: float
    filter_view: Mapping[str, Any] | None = None
    delivery_count: int = 1
    ordering_key: str | None = None
    handle: Any = None
    encoded: bytes | None = None


def records_event_body(records: Sequence[Record]) -> bytes | None:
    """`{"Records": [...]}` encoded from the records' own encodings; None unless every
    record has one. Same bytes as orjson.dumps({"Records": [r.payload ...]}), without
    encoding each payload a second time (a tenth of the CPU per record at batch 100)."""
    parts = [r.encoded for r in records]
    if None in parts:
        return None
    return b'{"Records":[' + b",".join(parts) + b"]}"  # type: ignore[arg-type]


def json_or_text(raw: bytes) -> Any:
    """A record's binary data as filters see it (ESM-SPEC §3.4): the JSON document when
    `raw` is valid JSON, else the UTF-8 text; UnicodeDecodeError when it is neither, for
    the source to apply its own rule (Kafka and MQ: leave the data out of the view)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode("utf-8")


@dataclass(frozen=True, slots=True, eq=False)
class Batch:
    """Records from one lane, invoked together, in lane order."""

    lane: str
    records: tuple[Record, ...]

    @property
    def size_bytes(self) -> int:
        return sum(r.size_bytes for r in self.records)

    def __len__(self) -> int:
        return len(self.records)


@dataclass(frozen=True, slots=True)
class Event:
    """The AWS-shaped document for one batch and its JSON encoding (sent as-is).

    `idempotency_key`: the same whenever the same records of a lane are invoked again
    (a retry, a restart, a rebalance) and different for any other record set
    (`esm.protection.idempotency`); targets pass it on (HTTP `Idempotency-Key`, the Python
    context, Lambda's ClientContext). Empty when the caller did not compute one.

    `owned`: `document` was built for this invocation alone, sharing no mutable part with
    esm's records (`FreshEvents`), and `body` is empty: given only to a target that reads
    no body (`reads_body = False`), which may hand the document to user code as it is."""

    document: Mapping[str, Any]
    body: bytes
    request_id: str
    idempotency_key: str = ""
    owned: bool = False


# ---- what a target returns -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Returned:
    """The function returned normally. `payload` is the decoded JSON response (None for an
    empty body); `raw` is the body as received, kept when it is not valid JSON."""

    payload: Any
    raw: bytes | None = None
    valid_json: bool = True


@dataclass(frozen=True, slots=True)
class FunctionFailed:
    """The function ran and failed: exception, timeout, crash (`functionError: Unhandled`)."""

    error_type: str
    error_message: str
    stack_trace: tuple[str, ...] = ()


InvokeResult = Returned | FunctionFailed


# ---- what the response means for the batch (ESM-SPEC §4) -------------------------------


@dataclass(frozen=True, slots=True)
class Success:
    """Every record in the batch was processed."""


@dataclass(frozen=True, slots=True)
class PartialFailure:
    """`batchItemFailures` named these records (in batch order); the others succeeded."""

    failed: tuple[Record, ...]


@dataclass(frozen=True, slots=True)
class FunctionError:
    """The whole batch failed in the function, or its response could not be accepted."""

    error_type: str
    error_message: str
    function_error: str | None = "Unhandled"


@dataclass(frozen=True, slots=True)
class InvokeFailure:
    """The batch never reached the function; does not use up retries (ESM-SPEC §4.1).
    `retry_after_seconds`: the target's own hint (`esm.errors.InvokeError`), or None."""

    reason: str
    retry_after_seconds: float | None = None


Outcome = Success | PartialFailure | FunctionError | InvokeFailure


# ---- the failure policy's steps (DESIGN §2) ---------------------------------------------


@dataclass(frozen=True, slots=True)
class Ack:
    """These records are finished for good: commit / delete / XACK them."""

    records: tuple[Record, ...]


@dataclass(frozen=True, slots=True)
class Release:
    """Queue family: deliver these records again later (after `delay_seconds` if the source
    can set it, else after the broker's visibility timeout)."""

    records: tuple[Record, ...]
    delay_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class Retry:
    """Stream family: invoke `batch` again on this lane after `delay_seconds`.
    `attempt` is the retry number the next invocation will be (1 = first retry);
    `invoke_count` counts every invocation of these records so far."""

    batch: Batch
    delay_seconds: float
    attempt: int
    invoke_count: int = 0


@dataclass(frozen=True, slots=True)
class Split:
    """Bisection: run these batches in order on this lane; splits use up no retries."""

    batches: tuple[Batch, ...]
    attempt: int
    invoke_count: int = 0


Condition = Literal[
    "RetryAttemptsExhausted", "RecordAgeExceeded", "MaximumPayloadSizeExceeded",
    "MaxDeliveriesExceeded",
]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Send a notice for these records to the on-failure destination, then ack them.
    `outcome` is the last invocation's outcome (None when they were never invoked)."""

    records: tuple[Record, ...]
    condition: Condition
    outcome: Outcome | None = None
    invoke_count: int = 0


Step = Ack | Release | Retry | Split | DeadLetter


@dataclass(frozen=True, slots=True)
class Settlement:
    """What a lane worker hands back to the reader for one lane: records to ack or release.
    Only the reader thread touches the source client, so settlements travel back to it."""

    lane: str
    ack: tuple[Record, ...] = ()
    release: tuple[Record, ...] = ()
    release_delay_seconds: float = 0.0
    finished: bool = False  # the lane's in-flight batch is fully settled
    details: Mapping[str, Any] = field(default_factory=dict)
