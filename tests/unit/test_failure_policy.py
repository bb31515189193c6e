"""esm.failures.policy: AWS's error handling (ESM-SPEC §4.2–4.4, checklist 33–58) as steps."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Sequence

import pytest

from esm.config.types import ConnectorSpec, MappingConfig, RetryBackoff
from esm.failures.policy import CAPPED_RETRIES_WITH_DESTINATION, FailurePolicy
from esm.interfaces import SourceTraits
from esm.records import (
    Ack,
    Batch,
    DeadLetter,
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

NOW = 1_700_000_000.0
FLAT = RetryBackoff(initial_seconds=1.0, maximum_seconds=60.0, multiplier=2.0, jitter=False)
BOOM = FunctionError("RuntimeError", "boom")
THROTTLED = InvokeFailure("429 Too Many Requests")


def make_batch(count: int, *, age: float = 0.0, deliveries: int = 1, lane: str = "p-0") -> Batch:
    records = tuple(
        Record(lane=lane, position=str(i), item_id=str(i), payload={"n": i}, size_bytes=10,
               timestamp=NOW - age, delivery_count=deliveries)
        for i in range(count)
    )
    return Batch(lane, records)


def stream(**kwargs: object) -> FailurePolicy:
    kwargs.setdefault("backoff", FLAT)
    return FailurePolicy("stream", rng=random.Random(0), **kwargs)  # type: ignore[arg-type]


def queue(**kwargs: object) -> FailurePolicy:
    kwargs.setdefault("backoff", FLAT)
    return FailurePolicy("queue", rng=random.Random(0), **kwargs)  # type: ignore[arg-type]


def first_try(policy: FailurePolicy, batch: Batch, outcome: Outcome) -> tuple[Step, ...]:
    return policy.decide(batch, outcome, attempt=0, invoke_count=1, now=NOW)


# ---- a lane driven to the end, the way a lane worker applies steps ----------------------


class LaneRun:
    """Applies steps depth first, in order, like a lane worker; remembers what happened."""

    def __init__(self) -> None:
        self.settled: list[Record] = []  # acked or dead-lettered, in settlement order
        self.dead: list[DeadLetter] = []
        self.invocations: list[tuple[Record, ...]] = []
        self.retries: list[Retry] = []


def drive(policy: FailurePolicy, batch: Batch, target: Callable[[Batch], Outcome],
          *, now: float = NOW, max_invocations: int = 10_000) -> LaneRun:
    run = LaneRun()
    jobs: deque[tuple[Batch, int, int]] = deque([(batch, 0, 0)])
    while jobs:
        job, attempt, count = jobs.popleft()
        screened, rest = policy.screen(job, now)
        follow = _apply(run, screened)
        if rest is not None:
            run.invocations.append(rest.records)
            assert len(run.invocations) <= max_invocations, "the lane never settles"
            follow += _apply(run, policy.decide(rest, target(rest), attempt=attempt,
                                                invoke_count=count + 1, now=now))
        jobs.extendleft(reversed(follow))
    return run


def _apply(run: LaneRun, steps: Sequence[Step]) -> list[tuple[Batch, int, int]]:
    follow: list[tuple[Batch, int, int]] = []
    for step in steps:
        match step:
            case Ack(records=records):
                run.settled.extend(records)
            case DeadLetter(records=records):
                run.dead.append(step)
                run.settled.extend(records)
            case Retry():
                run.retries.append(step)
                follow.append((step.batch, step.attempt, step.invoke_count))
            case Split(batches=halves):
                follow.extend((half, step.attempt, step.invoke_count) for half in halves)
            case Release():
                raise AssertionError("a stream lane never releases")
    return follow


def fails_with_poison(poison: set[int]) -> Callable[[Batch], Outcome]:
    def target(batch: Batch) -> Outcome:
        hit = any(r.payload["n"] in poison for r in batch.records)
        return BOOM if hit else Success()
    return target


# ---- stream family: success, retries, invoke errors ------------------------------------


def test_success_acks_the_whole_batch() -> None:
    batch = make_batch(3)
    for policy in (stream(), queue()):
        assert first_try(policy, batch, Success()) == (Ack(batch.records),)


@pytest.mark.parametrize("retries", [0, 1, 2, 5])
def test_maximum_retry_attempts_n_allows_n_plus_one_invocations(retries: int) -> None:
    # Given a target that always fails / When the lane runs to the end
    batch = make_batch(4)
    run = drive(stream(maximum_retry_attempts=retries), batch, lambda b: BOOM)
    # Then N + 1 invocations, then one notice reporting N + 1 invokes (checklist 43)
    assert len(run.invocations) == retries + 1
    assert run.dead == [DeadLetter(batch.records, "RetryAttemptsExhausted", BOOM, retries + 1)]
    assert [r.attempt for r in run.retries] == list(range(1, retries + 1))


def test_infinite_retries_keep_retrying_the_same_batch() -> None:
    # Given maximum_retry_attempts -1 / When the function fails a thousand times
    policy, batch = stream(maximum_retry_attempts=-1), make_batch(2)
    for attempt in range(1000):
        steps = policy.decide(batch, BOOM, attempt=attempt, invoke_count=attempt + 1, now=NOW)
        # Then every decision is a retry of the whole batch
        assert steps == (Retry(batch, 60.0 if attempt >= 6 else 2.0**attempt, attempt + 1,
                               attempt + 1),)


def test_retry_delay_follows_the_backoff_by_retry_number() -> None:
    policy, batch = stream(), make_batch(1)
    delays = [policy.decide(batch, BOOM, attempt=a, invoke_count=a + 1, now=NOW)[0]
              for a in range(8)]
    assert [s.delay_seconds for s in delays] == [1, 2, 4, 8, 16, 32, 60, 60]  # type: ignore[union-attr]


def test_invoke_errors_do_not_use_up_retries() -> None:
    # Given one retry allowed and a target that throttles three times, then fails twice
    outcomes = deque([THROTTLED, THROTTLED, THROTTLED, BOOM, BOOM])
    batch = make_batch(2)
    run = drive(stream(maximum_retry_attempts=1), batch, lambda b: outcomes.popleft())
    # Then all five invocations happen and only the function errors counted as retries
    assert len(run.invocations) == 5
    assert [r.attempt for r in run.retries] == [0, 0, 0, 1]
    assert run.dead == [DeadLetter(batch.records, "RetryAttemptsExhausted", BOOM, 5)]


def test_invoke_error_keeps_the_attempt_and_backs_off_by_invoke_count() -> None:
    policy, batch = stream(maximum_retry_attempts=0), make_batch(2)
    steps = policy.decide(batch, THROTTLED, attempt=0, invoke_count=4, now=NOW)
    assert steps == (Retry(batch, 8.0, 0, 4),)


def test_invoke_errors_are_retried_until_the_records_are_too_old() -> None:
    # Given records older than the maximum age, still throttled
    policy, batch = stream(maximum_record_age_in_seconds=60), make_batch(2, age=61)
    # When the invoke fails / Then the batch is discarded for its age, not retried
    steps = policy.decide(batch, THROTTLED, attempt=0, invoke_count=7, now=NOW)
    assert steps == (DeadLetter(batch.records, "RecordAgeExceeded", THROTTLED, 7),)


@pytest.mark.parametrize("outcome", [BOOM, PartialFailure(())])
def test_failed_records_past_maximum_age_are_discarded_instead_of_retried(
    outcome: Outcome,
) -> None:
    # Given the oldest record passed the maximum age while the batch was being retried
    batch = make_batch(3, age=100)
    outcome = PartialFailure((batch.records[0],)) if isinstance(outcome, PartialFailure) else BOOM
    policy = stream(maximum_record_age_in_seconds=99, maximum_retry_attempts=-1,
                    bisect_batch_on_function_error=True)
    # When it fails again / Then RecordAgeExceeded for the whole batch (checklist 42, 45)
    steps = policy.decide(batch, outcome, attempt=3, invoke_count=4, now=NOW)
    assert steps == (DeadLetter(batch.records, "RecordAgeExceeded", outcome, 4),)


def test_failed_young_records_are_retried_when_a_maximum_age_is_set() -> None:
    policy, batch = stream(maximum_record_age_in_seconds=60), make_batch(2, age=60)
    assert first_try(policy, batch, BOOM) == (Retry(batch, 1.0, 1, 1),)


# ---- stream family: record age before invoking ------------------------------------------


def test_records_older_than_maximum_age_are_discarded_without_invoking() -> None:
    # Given a batch whose first two records are older than 60 s
    young = make_batch(3, age=10)
    old = make_batch(2, age=61)
    batch = Batch("p-0", old.records + young.records)
    # When screened / Then the old ones go to the destination with no outcome (checklist 45)
    steps, rest = stream(maximum_record_age_in_seconds=60).screen(batch, NOW)
    assert steps == (DeadLetter(old.records, "RecordAgeExceeded", None, 0),)
    assert rest is not None and rest.records == young.records and rest.lane == "p-0"


@pytest.mark.parametrize(("age", "discarded"), [(59.999, False), (60.0, False), (60.001, True)])
def test_maximum_record_age_discards_only_strictly_older_records(
    age: float, discarded: bool,
) -> None:
    batch = make_batch(1, age=age)
    steps, rest = stream(maximum_record_age_in_seconds=60).screen(batch, NOW)
    assert (steps != ()) is discarded
    assert (rest is None) is discarded


def test_infinite_maximum_age_never_discards() -> None:
    batch = make_batch(3, age=10 * 365 * 86400)
    assert stream(maximum_record_age_in_seconds=-1).screen(batch, NOW) == ((), batch)


def test_a_batch_of_only_old_records_leaves_nothing_to_invoke() -> None:
    batch = make_batch(3, age=1000)
    steps, rest = stream(maximum_record_age_in_seconds=60).screen(batch, NOW)
    assert steps == (DeadLetter(batch.records, "RecordAgeExceeded", None, 0),)
    assert rest is None


def test_an_old_record_behind_a_young_one_is_invoked_to_keep_the_position_safe() -> None:
    # Given out-of-order timestamps (Kafka CREATE_TIME): young, old, young
    young_a, old, young_b = make_batch(1).records[0], make_batch(1, age=500).records[0], \
        make_batch(1).records[0]
    batch = Batch("p-0", (young_a, old, young_b))
    # When screened / Then nothing is discarded: acking `old` first would commit past young_a
    assert stream(maximum_record_age_in_seconds=60).screen(batch, NOW) == ((), batch)
    # And when that batch then fails, it is discarded for its age
    policy = stream(maximum_record_age_in_seconds=60)
    assert first_try(policy, batch, BOOM)[0].condition == "RecordAgeExceeded"  # type: ignore[union-attr]


# ---- stream family: bisection -------------------------------------------------------------


def test_bisect_splits_a_failed_batch_in_halves_without_using_retries() -> None:
    batch = make_batch(5)
    steps = stream(bisect_batch_on_function_error=True).decide(
        batch, BOOM, attempt=2, invoke_count=3, now=NOW)
    assert len(steps) == 1 and isinstance(steps[0], Split)
    split = steps[0]
    assert (split.attempt, split.invoke_count) == (2, 3)
    assert [h.records for h in split.batches] == [batch.records[:3], batch.records[3:]]
    assert all(h.lane == batch.lane for h in split.batches)


def test_bisect_splits_even_when_retries_are_exhausted() -> None:
    policy = stream(bisect_batch_on_function_error=True, maximum_retry_attempts=0)
    assert isinstance(first_try(policy, make_batch(2), BOOM)[0], Split)


def test_a_single_record_is_retried_not_split() -> None:
    batch = make_batch(1)
    steps = first_try(stream(bisect_batch_on_function_error=True), batch, BOOM)
    assert steps == (Retry(batch, 1.0, 1, 1),)


def test_without_bisect_a_failed_batch_is_retried_whole() -> None:
    batch = make_batch(8)
    assert first_try(stream(), batch, BOOM) == (Retry(batch, 1.0, 1, 1),)


def test_invoke_errors_never_bisect() -> None:
    batch = make_batch(8)
    steps = first_try(stream(bisect_batch_on_function_error=True), batch, THROTTLED)
    assert steps == (Retry(batch, 1.0, 0, 1),)


@pytest.mark.parametrize(("size", "poison", "retries"),
                         [(8, 5, 0), (8, 0, 2), (7, 6, 1), (13, 4, 3), (2, 1, 0), (1, 0, 2)])
def test_bisects_until_poison_record_is_isolated(size: int, poison: int, retries: int) -> None:
    # Given a target that fails every batch holding the poison record
    batch = make_batch(size)
    policy = stream(bisect_batch_on_function_error=True, maximum_retry_attempts=retries)
    # When the lane runs to the end
    run = drive(policy, batch, fails_with_poison({poison}))
    # Then exactly the poison record is dead-lettered, and everything settles in lane order
    assert [d.records for d in run.dead] == [(batch.records[poison],)]
    assert run.dead[0].condition == "RetryAttemptsExhausted"
    assert run.settled == list(batch.records)
    # And the poison record alone was invoked retries + 1 times
    alone = [inv for inv in run.invocations if inv == (batch.records[poison],)]
    assert len(alone) == retries + 1


def test_bisection_isolates_several_poison_records() -> None:
    batch = make_batch(16)
    policy = stream(bisect_batch_on_function_error=True, maximum_retry_attempts=1)
    run = drive(policy, batch, fails_with_poison({2, 3, 11}))
    assert [d.records[0].payload["n"] for d in run.dead] == [2, 3, 11]
    assert all(len(d.records) == 1 for d in run.dead)
    assert run.settled == list(batch.records)


# ---- stream family: partial batch responses ----------------------------------------------


def test_partial_failure_checkpoints_at_lowest_failed_record() -> None:
    # Given records 5 and 3 reported failed (in any order)
    batch = make_batch(8)
    outcome = PartialFailure((batch.records[5], batch.records[3]))
    # When deciding / Then 0..2 are acked and 3..7 retried as one batch (checklist 47)
    steps = first_try(stream(), batch, outcome)
    assert len(steps) == 2
    assert steps[0] == Ack(batch.records[:3])
    retry = steps[1]
    assert isinstance(retry, Retry)
    assert retry.batch.records == batch.records[3:]
    assert (retry.attempt, retry.invoke_count) == (1, 1)


def test_partial_failure_uses_up_retries() -> None:
    batch = make_batch(4)
    outcome = PartialFailure((batch.records[2],))
    steps = stream(maximum_retry_attempts=2).decide(batch, outcome, attempt=2, invoke_count=3,
                                                    now=NOW)
    assert steps == (Ack(batch.records[:2]),
                     DeadLetter(batch.records[2:], "RetryAttemptsExhausted", outcome, 3))


def test_partial_failure_with_bisect_cuts_instead_of_splitting() -> None:
    # Given bisect on and a partial response (checklist 51)
    batch = make_batch(6)
    steps = first_try(stream(bisect_batch_on_function_error=True), batch,
                      PartialFailure((batch.records[4],)))
    # Then the batch is cut at the returned record, not split
    assert steps[0] == Ack(batch.records[:4])
    assert isinstance(steps[1], Retry) and steps[1].batch.records == batch.records[4:]


def test_partial_failure_at_the_first_record_retries_the_batch_without_an_empty_ack() -> None:
    batch = make_batch(3)
    assert first_try(stream(), batch, PartialFailure((batch.records[0],))) == (
        Retry(batch, 1.0, 1, 1),)


def test_partial_failure_naming_no_record_of_the_batch_fails_the_whole_batch() -> None:
    batch, stranger = make_batch(3), make_batch(1).records[0]
    for outcome in (PartialFailure((stranger,)), PartialFailure(())):
        assert first_try(stream(), batch, outcome) == (Retry(batch, 1.0, 1, 1),)


def test_partial_failures_drive_a_lane_to_the_end_in_order() -> None:
    # Given a target that fails from record 4 onward twice, then succeeds
    batch, calls = make_batch(6), []

    def target(b: Batch) -> Outcome:
        calls.append(b)
        return PartialFailure(b.records[-2:]) if len(calls) <= 2 else Success()

    run = drive(stream(maximum_retry_attempts=5), batch, target)
    assert [len(b) for b in calls] == [6, 2, 2]
    assert run.settled == list(batch.records) and run.dead == []


# ---- queue family ---------------------------------------------------------------------------


def test_queue_partial_failure_acks_the_others_and_releases_the_failed() -> None:
    batch = make_batch(4, deliveries=2)
    outcome = PartialFailure((batch.records[3], batch.records[1]))
    steps = first_try(queue(), batch, outcome)
    assert steps == (Ack((batch.records[0], batch.records[2])),
                     Release((batch.records[1], batch.records[3]), 2.0))


@pytest.mark.parametrize("outcome", [BOOM, THROTTLED])
def test_queue_failure_releases_everything_with_backoff_by_delivery_count(
    outcome: Outcome,
) -> None:
    batch = make_batch(3, deliveries=4)
    assert first_try(queue(), batch, outcome) == (Release(batch.records, 8.0),)


def test_queue_release_backs_off_by_the_most_delivered_record() -> None:
    batch = Batch("q", make_batch(1, deliveries=1).records + make_batch(1, deliveries=3).records)
    assert first_try(queue(), batch, BOOM) == (Release(batch.records, 4.0),)


@pytest.mark.parametrize("outcome", [BOOM, THROTTLED])
def test_queue_records_at_max_deliveries_are_dead_lettered_on_failure(outcome: Outcome) -> None:
    # Given max_deliveries 3 and records delivered 2 and 3 times
    fresh, spent = make_batch(2, deliveries=2).records, make_batch(2, deliveries=3).records
    batch = Batch("q", (fresh[0], spent[0], fresh[1], spent[1]))
    # When the batch fails / Then the spent ones get a notice, the others come back
    steps = queue(max_deliveries=3).decide(batch, outcome, attempt=0, invoke_count=1, now=NOW)
    assert steps == (DeadLetter(spent, "MaxDeliveriesExceeded", outcome, 1), Release(fresh, 2.0))


def test_queue_partial_failure_dead_letters_failed_records_at_max_deliveries() -> None:
    batch = make_batch(3, deliveries=5)
    outcome = PartialFailure((batch.records[1],))
    steps = first_try(queue(max_deliveries=5), batch, outcome)
    assert steps == (Ack((batch.records[0], batch.records[2])),
                     DeadLetter((batch.records[1],), "MaxDeliveriesExceeded", outcome, 1))


def test_queue_without_max_deliveries_releases_forever() -> None:
    batch = make_batch(2, deliveries=10_000)
    assert first_try(queue(), batch, BOOM) == (Release(batch.records, 60.0),)


def test_queue_screen_dead_letters_records_delivered_more_than_max_deliveries() -> None:
    ok, over = make_batch(2, deliveries=3).records, make_batch(2, deliveries=4).records
    batch = Batch("q", (over[0], ok[0], over[1], ok[1]))
    steps, rest = queue(max_deliveries=3).screen(batch, NOW)
    assert steps == (DeadLetter(over, "MaxDeliveriesExceeded", None, 0),)
    assert rest is not None and rest.records == ok


def test_queue_screen_ignores_record_age_and_keeps_all_without_max_deliveries() -> None:
    batch = make_batch(3, age=10**6, deliveries=50)
    assert queue(maximum_record_age_in_seconds=60).screen(batch, NOW) == ((), batch)


def test_queue_partial_failure_naming_no_record_releases_the_whole_batch() -> None:
    batch = make_batch(2)
    steps = first_try(queue(), batch, PartialFailure((make_batch(1).records[0],)))
    assert steps == (Release(batch.records, 1.0),)


# ---- the invariant, over random outcomes --------------------------------------------------


def random_outcome(rng: random.Random, batch: Batch) -> Outcome:
    kind = rng.randrange(4)
    if kind == 0:
        return Success()
    if kind == 1:
        failed = [r for r in batch.records if rng.random() < 0.3] or [rng.choice(batch.records)]
        rng.shuffle(failed)
        return PartialFailure(tuple(failed))
    return BOOM if kind == 2 else THROTTLED


def random_policy(rng: random.Random, family: str) -> FailurePolicy:
    return FailurePolicy(
        family,  # type: ignore[arg-type]
        maximum_retry_attempts=rng.choice([-1, 0, 1, 3]),
        maximum_record_age_in_seconds=rng.choice([-1, 60, 3600]),
        bisect_batch_on_function_error=rng.random() < 0.5,
        max_deliveries=rng.choice([None, 1, 3]),
        backoff=RetryBackoff(jitter=True), rng=rng,
    )


def random_batch(rng: random.Random) -> Batch:
    records = tuple(
        Record(lane="l", position=str(i), item_id=str(i), payload={"n": i}, size_bytes=1,
               timestamp=NOW - rng.choice([0, 30, 90, 5000]), delivery_count=rng.randint(1, 4))
        for i in range(rng.randint(1, 12))
    )
    return Batch("l", records)


def records_of(step: Step) -> tuple[Record, ...]:
    match step:
        case Retry(batch=batch):
            return batch.records
        case Split(batches=halves):
            return tuple(r for half in halves for r in half.records)
        case _:
            return step.records


@pytest.mark.parametrize("family", ["stream", "queue"])
def test_every_record_lands_in_exactly_one_step_in_order(family: str) -> None:
    rng = random.Random(2024)
    for _ in range(3000):
        policy, batch = random_policy(rng, family), random_batch(rng)
        outcome = random_outcome(rng, batch)
        attempt = rng.randint(0, 4)
        steps = policy.decide(batch, outcome, attempt=attempt, invoke_count=attempt + 1, now=NOW)
        listed = [r for step in steps for r in records_of(step)]
        assert sorted(map(id, listed)) == sorted(map(id, batch.records)), (policy, outcome)
        assert all(records_of(step) for step in steps), "no empty step"
        for step in steps:  # batch order inside each step
            positions = [batch.records.index(r) for r in records_of(step)]
            assert positions == sorted(positions)
        if family == "stream":  # and across steps, so the position never jumps ahead
            assert listed == list(batch.records)
            assert not any(isinstance(s, Release) for s in steps)
        else:
            assert not any(isinstance(s, Retry | Split) for s in steps)


@pytest.mark.parametrize("family", ["stream", "queue"])
def test_screen_keeps_every_record_exactly_once(family: str) -> None:
    rng = random.Random(99)
    for _ in range(2000):
        policy, batch = random_policy(rng, family), random_batch(rng)
        steps, rest = policy.screen(batch, NOW)
        kept = list(rest.records) if rest is not None else []
        dropped = [r for s in steps for r in records_of(s)]
        assert sorted(map(id, kept + dropped)) == sorted(map(id, batch.records))
        assert all(isinstance(s, DeadLetter) and s.outcome is None for s in steps)
        if family == "stream":
            assert dropped + kept == list(batch.records)


def test_random_stream_lanes_always_settle_every_record_once_in_order() -> None:
    # Given random policies with finite retries and random targets
    rng = random.Random(7)
    for _ in range(300):
        policy = random_policy(rng, "stream")
        if policy.maximum_retry_attempts == -1 and policy.maximum_record_age_in_seconds == -1:
            continue  # a lane that fails forever never settles, as in AWS
        batch = random_batch(rng)
        run = drive(policy, batch, lambda b: random_outcome(rng, b))
        # Then every record is acked or dead-lettered exactly once, in lane order
        assert run.settled == list(batch.records)


# ---- construction -------------------------------------------------------------------------


def mapping(**overrides: object) -> MappingConfig:
    spec = ConnectorSpec(type="x", cls=object, settings=None)
    fields: dict[str, object] = {"name": "m", "source": spec, "target": spec}
    fields.update(overrides)
    return MappingConfig(**fields)  # type: ignore[arg-type]


KAFKA = SourceTraits(family="stream", caps_infinite_retries_with_destination=True,
                     batch_info_key="KafkaBatchInfo")
KINESIS = SourceTraits(family="stream", batch_info_key="KinesisBatchInfo")
DESTINATION = ConnectorSpec(type="file", cls=object, settings=None)


@pytest.mark.parametrize(
    ("traits", "retries", "on_failure", "expected"),
    [
        (KAFKA, -1, DESTINATION, CAPPED_RETRIES_WITH_DESTINATION),  # checklist 57
        (KAFKA, -1, None, -1),
        (KAFKA, 50, DESTINATION, 50),
        (KAFKA, 0, DESTINATION, 0),
        (KINESIS, -1, DESTINATION, -1),
    ],
)
def test_kafka_caps_infinite_retries_at_ten_when_a_destination_is_set(
    traits: SourceTraits, retries: int, on_failure: ConnectorSpec | None, expected: int,
) -> None:
    m = mapping(maximum_retry_attempts=retries, on_failure=on_failure)
    assert FailurePolicy.for_mapping(m, traits, random.Random()).maximum_retry_attempts == expected


def test_for_mapping_takes_every_setting_from_the_mapping_and_family_from_the_source() -> None:
    backoff = RetryBackoff(initial_seconds=3.0)
    m = mapping(maximum_record_age_in_seconds=600, bisect_batch_on_function_error=True,
                max_deliveries=4, retry_backoff=backoff, maximum_retry_attempts=7)
    policy = FailurePolicy.for_mapping(m, SourceTraits(family="queue"))
    assert (policy.family, policy.maximum_retry_attempts, policy.maximum_record_age_in_seconds,
            policy.bisect_batch_on_function_error, policy.max_deliveries, policy.backoff) == (
        "queue", 7, 600, True, 4, backoff)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"maximum_retry_attempts": -2}, "maximum_retry_attempts must be -1"),
        ({"maximum_record_age_in_seconds": 0}, "maximum_record_age_in_seconds must be -1"),
        ({"maximum_record_age_in_seconds": -5}, "maximum_record_age_in_seconds must be -1"),
        ({"max_deliveries": 0}, "max_deliveries must be 1 or more"),
    ],
)
def test_invalid_settings_are_rejected_with_the_setting_named(
    kwargs: dict[str, int], message: str,
) -> None:
    with pytest.raises(ValueError, match=message):
        FailurePolicy("stream", **kwargs)  # type: ignore[arg-type]


def test_unknown_family_is_rejected() -> None:
    with pytest.raises(ValueError, match="family must be 'stream' or 'queue', got 'pipe'"):
        FailurePolicy("pipe")  # type: ignore[arg-type]


def test_decide_rejects_an_empty_queue_batch_and_negative_counts() -> None:
    with pytest.raises(ValueError, match="lane 'x' has no records"):
        FailurePolicy("queue").decide(Batch("x", ()), BOOM, attempt=0, invoke_count=1, now=NOW)
    with pytest.raises(ValueError, match="attempt=-1"):
        stream().decide(make_batch(1), BOOM, attempt=-1, invoke_count=1, now=NOW)


# ---- the target's Retry-After hint and the circuit breaker's hold ------------------------


def test_invoke_error_with_retry_after_waits_at_least_the_hint() -> None:
    # Given a backoff that would retry after 1 s and a target that asked for 7 s
    steps = first_try(stream(backoff=FLAT), make_batch(2), InvokeFailure("HTTP 429", 7.0))
    assert isinstance(steps[0], Retry) and steps[0].delay_seconds == 7.0
    assert steps[0].attempt == 0  # a throttle still uses up no retries


def test_retry_after_is_capped_by_the_backoff_maximum() -> None:
    capped = RetryBackoff(initial_seconds=1.0, maximum_seconds=30.0, jitter=False)
    steps = first_try(stream(backoff=capped), make_batch(1), InvokeFailure("HTTP 503", 3600.0))
    assert isinstance(steps[0], Retry) and steps[0].delay_seconds == 30.0


def test_a_short_hint_does_not_shorten_the_backoff() -> None:
    steps = first_try(stream(backoff=FLAT), make_batch(1), InvokeFailure("HTTP 429", 0.0))
    assert isinstance(steps[0], Retry) and steps[0].delay_seconds == 1.0


def test_queue_release_after_a_throttle_is_delayed_by_the_hint() -> None:
    steps = first_try(queue(backoff=FLAT), make_batch(2), InvokeFailure("HTTP 429", 5.0))
    assert isinstance(steps[0], Release) and steps[0].delay_seconds == 5.0


def test_queue_batch_is_retried_in_place_when_a_breaker_guards_the_target() -> None:
    policy = queue(backoff=FLAT, hold_invoke_failures=True, max_deliveries=1)
    batch = make_batch(2, deliveries=1)
    steps = first_try(policy, batch, InvokeFailure("connection refused"))
    # Not released (its delivery count would grow to the dead-letter limit), not lettered
    assert len(steps) == 1 and isinstance(steps[0], Retry) and steps[0].batch is batch
    # A function error is still the broker's business: released as before
    assert isinstance(first_try(policy, batch, BOOM)[0], DeadLetter | Release)


def test_a_window_final_invoke_without_records_is_acked_or_retried_never_dead_lettered(
) -> None:
    # A tumbling window's final invoke is an empty stream batch (ESM-SPEC §2.5)
    final = Batch("s", ())
    assert stream().decide(final, Success(), attempt=0, invoke_count=1, now=NOW) == (Ack(()),)
    [step] = stream(maximum_retry_attempts=0).decide(final, BOOM, attempt=0, invoke_count=1,
                                                      now=NOW)
    assert isinstance(step, Retry) and step.attempt == 1 and step.batch is final
    [again] = stream().decide(final, InvokeFailure("throttled"), attempt=2, invoke_count=3,
                              now=NOW)
    assert isinstance(again, Retry) and again.attempt == 2
