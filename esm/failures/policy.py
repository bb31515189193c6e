"""The failure policy: the whole of AWS's error handling as one pure value (DESIGN §2, §7).

A lane worker asks two questions of it:

- `screen(batch, now)` before invoking: which records must not be invoked at all
  (stream: older than `maximum_record_age_in_seconds`, ESM-SPEC §4.3, checklist 45;
  queue: delivered more than `max_deliveries` times, an esm extension, DESIGN §3);
- `decide(batch, outcome, attempt=, invoke_count=, now=)` after invoking: what to do with
  every record of the batch, as a tuple of steps (`esm.records.Step`).

Guarantee (tested over random outcomes): every record of the batch appears in exactly one
step, either directly (Ack / Release / DeadLetter) or inside the batch of a Retry / Split;
no step is empty; records keep batch order inside each step, and for the stream family the
steps, read in order, list the records in batch order. The lane worker applies the steps in
order, so a stream lane's position never moves past a record that is not finished.

The policy does no I/O and reads no clock: `now` comes in, and the jitter's random source is
injected. It keeps no state between calls; `attempt` and `invoke_count` travel with the
Retry / Split steps it returns.
"""

from __future__ import annotations

import random
from dataclasses import KW_ONLY, dataclass, field
from itertools import takewhile

from esm.config.types import MappingConfig, RetryBackoff
from esm.failures.backoff import retry_delay
from esm.interfaces import SourceTraits
from esm.records import (
    Ack,
    Batch,
    Condition,
    DeadLetter,
    Family,
    FunctionError,
    InvokeFailure,
    Outcome,
    PartialFailure,
    Record,
    Release,
    Retry,
    Split,
    Step,
    Success,
)

# Kafka: "Infinite retries together with an on-failure destination are capped at 10 retries
# automatically" (ESM-SPEC §4.4, checklist 57).
CAPPED_RETRIES_WITH_DESTINATION = 10

Steps = tuple[Step, ...]


@dataclass(frozen=True, slots=True)
class FailurePolicy:
    """AWS's rules for one mapping (ESM-SPEC §4.2–4.4, checklist 33–58).

    maximum_retry_attempts: -1 = retry forever; N allows N + 1 invocations of a record set.
    maximum_record_age_in_seconds: -1 = never too old; else records with
        `now - record.timestamp > age` are discarded (stream family only).
    bisect_batch_on_function_error: split a batch that failed with a function error in two.
    max_deliveries: queue family: dead-letter a record once it was delivered this many times
        and failed (None = leave it to the broker, e.g. the SQS redrive policy, checklist 39).
    backoff: delay before retries (stream) and redeliveries (queue); after an invoke
        error it is at least the target's `retry_after_seconds` (capped by the maximum).
    hold_invoke_failures: queue family, set when a circuit breaker guards the target: a
        batch that failed with an invoke error is retried in place (the breaker decides
        when) instead of released, so its records neither grow their delivery count
        towards `max_deliveries` nor get dead-lettered while the target is down.
    """

    family: Family
    _: KW_ONLY
    maximum_retry_attempts: int = -1
    maximum_record_age_in_seconds: int = -1
    bisect_batch_on_function_error: bool = False
    max_deliveries: int | None = None
    backoff: RetryBackoff = field(default_factory=RetryBackoff)
    hold_invoke_failures: bool = False
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.family not in ("stream", "queue"):
            raise ValueError(f"family must be 'stream' or 'queue', got {self.family!r}")
        if self.maximum_retry_attempts < -1:
            raise ValueError(
                f"maximum_retry_attempts must be -1 (infinite) or 0 or more, "
                f"got {self.maximum_retry_attempts}"
            )
        if self.maximum_record_age_in_seconds == 0 or self.maximum_record_age_in_seconds < -1:
            raise ValueError(
                f"maximum_record_age_in_seconds must be -1 (infinite) or positive, "
                f"got {self.maximum_record_age_in_seconds}"
            )
        if self.max_deliveries is not None and self.max_deliveries < 1:
            raise ValueError(f"max_deliveries must be 1 or more, got {self.max_deliveries}")

    @classmethod
    def for_mapping(
        cls, mapping: MappingConfig, traits: SourceTraits, rng: random.Random | None = None
    ) -> FailurePolicy:
        """The policy for `mapping`, with Kafka's cap: infinite retries plus an on-failure
        destination means 10 retries (ESM-SPEC §4.4, checklist 57)."""
        retries = mapping.maximum_retry_attempts
        if (
            traits.caps_infinite_retries_with_destination
            and mapping.on_failure is not None
            and retries == -1
        ):
            retries = CAPPED_RETRIES_WITH_DESTINATION
        return cls(
            traits.family,
            maximum_retry_attempts=retries,
            maximum_record_age_in_seconds=mapping.maximum_record_age_in_seconds,
            bisect_batch_on_function_error=mapping.bisect_batch_on_function_error,
            max_deliveries=mapping.max_deliveries,
            backoff=mapping.retry_backoff,
            hold_invoke_failures=mapping.circuit_breaker is not None,
            rng=rng if rng is not None else random.Random(),
        )

    # ---- before invoking ---------------------------------------------------------------

    def screen(self, batch: Batch, now: float) -> tuple[Steps, Batch | None]:
        """Records to dead-letter without invoking, and the batch left to invoke (None when
        nothing is left).

        Stream family: records older than `maximum_record_age_in_seconds` are discarded with
        condition RecordAgeExceeded and no outcome (ESM-SPEC §4.3, checklist 45). Only the
        leading run of old records is discarded here: the dead letter is acked before the
        rest is invoked, and acking a stream record commits the lane's position past every
        record before it. Broker timestamps can be out of order (Kafka CREATE_TIME), so an
        old record behind a young one is invoked; if that invocation fails, `decide`
        discards the batch for its age.

        Queue family: records delivered more than `max_deliveries` times are discarded with
        condition MaxDeliveriesExceeded (queue records are acked one by one, so any subset).
        """
        if self.family == "stream":
            old = tuple(takewhile(lambda r: self._too_old(r, now), batch.records))
            return _divert(batch, old, "RecordAgeExceeded")
        limit = self.max_deliveries
        if limit is None:
            return (), batch
        over = tuple(r for r in batch.records if r.delivery_count > limit)
        return _divert(batch, over, "MaxDeliveriesExceeded")

    # ---- after invoking ----------------------------------------------------------------

    def decide(
        self, batch: Batch, outcome: Outcome, *, attempt: int, invoke_count: int, now: float
    ) -> Steps:
        """The steps that settle every record of `batch` after an invocation.

        attempt: retries already made of this record set (0 on the first invocation).
        invoke_count: invocations of these records so far, including this one; reported as
            `approximateInvokeCount` (checklist 43) and carried on Retry / Split / DeadLetter.
        """
        if not batch.records and self.family != "stream":
            raise ValueError(f"decide: the batch for lane {batch.lane!r} has no records")
        if attempt < 0 or invoke_count < 0:
            raise ValueError(
                f"decide: attempt and invoke_count must be 0 or more, "
                f"got attempt={attempt}, invoke_count={invoke_count}"
            )
        if not batch.records:
            return self._decide_window_final(batch, outcome, attempt, invoke_count)
        if self.family == "stream":
            return self._decide_stream(batch, outcome, attempt, invoke_count, now)
        return self._decide_queue(batch, outcome, invoke_count)

    # ---- stream family (Kinesis, DynamoDB Streams, Kafka: ESM-SPEC §4.3, §4.4) ---------

    def _decide_stream(
        self, batch: Batch, outcome: Outcome, attempt: int, invoke_count: int, now: float
    ) -> Steps:
        match outcome:
            case Success():
                return (Ack(batch.records),)
            case PartialFailure():
                return self._stream_partial(batch, outcome, attempt, invoke_count, now)
            case FunctionError():
                return self._stream_failed(batch, outcome, attempt, invoke_count, now)
            case InvokeFailure():
                return self._stream_invoke_failure(batch, outcome, attempt, invoke_count, now)
        raise TypeError(f"decide: unknown outcome {outcome!r}")

    def _decide_window_final(self, batch: Batch, outcome: Outcome, attempt: int,
                             invoke_count: int) -> Steps:
        """A tumbling window's final invoke (no records, ESM-SPEC §2.5): retried with the
        usual backoff; the window invoker gives it up after maximum_retry_attempts."""
        if isinstance(outcome, Success):
            return (Ack(()),)
        retry = attempt if isinstance(outcome, InvokeFailure) else attempt + 1
        return (Retry(batch, self._delay(max(1, retry, invoke_count)), retry, invoke_count),)

    def _stream_partial(
        self, batch: Batch, outcome: PartialFailure, attempt: int, invoke_count: int,
        now: float,
    ) -> Steps:
        """Checkpoint at the lowest failed record and retry from it onward (checklist 47).

        Partial failures use up retries, and bisection does not apply: "the batch is cut at
        the returned sequence number" (ESM-SPEC §4.3, checklist 51). A failure list naming
        no record of the batch (the outcome interpreter should have made it a FunctionError)
        fails the whole batch rather than acking records nobody vouched for.
        """
        failed = {id(r) for r in outcome.failed}
        records = batch.records
        cut = next((i for i, r in enumerate(records) if id(r) in failed), 0)
        if cut == 0:
            return self._stream_failed(batch, outcome, attempt, invoke_count, now)
        rest = Batch(batch.lane, records[cut:])
        return (Ack(records[:cut]),) + self._stream_failed(
            rest, outcome, attempt, invoke_count, now
        )

    def _stream_failed(
        self, batch: Batch, outcome: FunctionError | PartialFailure, attempt: int,
        invoke_count: int, now: float,
    ) -> Steps:
        """A failed record set: discard it when too old (checklist 42, 45), bisect it on a
        function error (checklist 46: splits use up no retries), discard it when retries
        are exhausted (checklist 43: N retries = N + 1 invocations), else retry it."""
        records = batch.records
        if self._any_too_old(records, now):
            return (DeadLetter(records, "RecordAgeExceeded", outcome, invoke_count),)
        can_split = isinstance(outcome, FunctionError) and len(records) > 1
        if can_split and self.bisect_batch_on_function_error:
            return (Split(_halves(batch), attempt, invoke_count),)
        if self._retries_exhausted(attempt):
            return (DeadLetter(records, "RetryAttemptsExhausted", outcome, invoke_count),)
        retry = attempt + 1
        return (Retry(batch, self._delay(retry), retry, invoke_count),)

    def _stream_invoke_failure(
        self, batch: Batch, outcome: InvokeFailure, attempt: int, invoke_count: int,
        now: float,
    ) -> Steps:
        """Throttles and invoke errors are retried without using up retries, until the
        records are too old (ESM-SPEC §4.1, checklist 44). The delay grows with the number
        of invocations, since `attempt` does not move."""
        if self._any_too_old(batch.records, now):
            return (DeadLetter(batch.records, "RecordAgeExceeded", outcome, invoke_count),)
        delay = self._delay(max(1, invoke_count), outcome)
        return (Retry(batch, delay, attempt, invoke_count),)

    # ---- queue family (SQS, Redis Streams: ESM-SPEC §4.2, DESIGN §3) -------------------

    def _decide_queue(self, batch: Batch, outcome: Outcome, invoke_count: int) -> Steps:
        """No retries inside the lane: the broker redelivers released records.

        Success acks all (checklist 33); a partial failure acks the others and releases the
        named records (checklist 35); a function or invoke error releases all (checklist
        34, 38), except that an invoke error is retried in place while a circuit breaker
        guards the target (`hold_invoke_failures`). A released record already delivered
        `max_deliveries` times is dead-lettered instead (ack follows the durable notice).
        """
        records = batch.records
        match outcome:
            case Success():
                return (Ack(records),)
            case PartialFailure():
                failed, done = _split_by(records, outcome.failed)
                if not failed:
                    # Names no record of the batch: fail it all rather than ack records
                    # nobody vouched for (the interpreter should have made it an error).
                    return self._release(records, outcome, invoke_count)
                acked: Steps = (Ack(done),) if done else ()
                return acked + self._release(failed, outcome, invoke_count)
            case InvokeFailure() if self.hold_invoke_failures:
                delay = self._delay(max(1, invoke_count), outcome)
                return (Retry(batch, delay, 0, invoke_count),)
            case FunctionError() | InvokeFailure():
                return self._release(records, outcome, invoke_count)
        raise TypeError(f"decide: unknown outcome {outcome!r}")

    def _release(self, records: tuple[Record, ...], outcome: Outcome, invoke_count: int) -> Steps:
        limit = self.max_deliveries
        spent: tuple[Record, ...] = ()
        again = records
        if limit is not None:
            spent = tuple(r for r in records if r.delivery_count >= limit)
            again = tuple(r for r in records if r.delivery_count < limit)
        steps: list[Step] = []
        if spent:
            steps.append(DeadLetter(spent, "MaxDeliveriesExceeded", outcome, invoke_count))
        if again:
            deliveries = max(r.delivery_count for r in again)
            steps.append(Release(again, self._delay(max(1, deliveries), outcome)))
        return tuple(steps)

    # ---- shared ------------------------------------------------------------------------

    def _too_old(self, record: Record, now: float) -> bool:
        age = self.maximum_record_age_in_seconds
        return age != -1 and now - record.timestamp > age

    def _any_too_old(self, records: tuple[Record, ...], now: float) -> bool:
        return any(self._too_old(r, now) for r in records)

    def _retries_exhausted(self, attempt: int) -> bool:
        limit = self.maximum_retry_attempts
        return limit != -1 and attempt >= limit

    def _delay(self, retry_number: int, outcome: Outcome | None = None) -> float:
        hint = outcome.retry_after_seconds if isinstance(outcome, InvokeFailure) else None
        return retry_delay(self.backoff, retry_number, self.rng, hint)


def _divert(
    batch: Batch, diverted: tuple[Record, ...], condition: Condition
) -> tuple[Steps, Batch | None]:
    """Dead-letter `diverted` (never invoked: no outcome) and keep the rest to invoke."""
    if not diverted:
        return (), batch
    _, rest = _split_by(batch.records, diverted)
    step = DeadLetter(diverted, condition, None, 0)
    return (step,), (Batch(batch.lane, rest) if rest else None)


def _split_by(
    records: tuple[Record, ...], chosen: tuple[Record, ...]
) -> tuple[tuple[Record, ...], tuple[Record, ...]]:
    """(records that are in `chosen`, the others), both in batch order. Records compare by
    identity (`esm.records`), so two deliveries of one broker entry stay distinct."""
    ids = {id(r) for r in chosen}
    return tuple(r for r in records if id(r) in ids), tuple(r for r in records if id(r) not in ids)


def _halves(batch: Batch) -> tuple[Batch, Batch]:
    """Bisection (ESM-SPEC §4.3): the first half gets the extra record of an odd batch."""
    mid = (len(batch.records) + 1) // 2
    return Batch(batch.lane, batch.records[:mid]), Batch(batch.lane, batch.records[mid:])
