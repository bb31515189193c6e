"""LaneBatcher: a batch closes on count, window or the 6 MB limit, whichever comes first
(ESM-SPEC §1.4, checklist 11)."""

from __future__ import annotations

from esm.pipeline.batching import BatchLimits, LaneBatcher
from esm.records import Record


def record(n: int, size: int = 10) -> Record:
    return Record("lane-0", str(n), str(n), {"n": n}, size, 0.0)


def ids(batch) -> list[str]:
    return [r.position for r in batch.records]


def test_closes_when_batch_size_is_reached():
    batcher = LaneBatcher("lane-0", BatchLimits(batch_size=3, window_seconds=60))
    assert batcher.add(record(1), 0.0) == []
    assert batcher.add(record(2), 0.0) == []
    (batch,) = batcher.add(record(3), 0.0)
    assert ids(batch) == ["1", "2", "3"]
    assert len(batcher) == 0


def test_closes_before_a_record_that_would_pass_the_byte_limit():
    # envelope 10 + two records of 40 (+1 separator each) = 92 fits 100; a third would not
    limits = BatchLimits(batch_size=10, window_seconds=60, envelope_bytes=10, max_bytes=100)
    batcher = LaneBatcher("lane-0", limits)
    batcher.add(record(1, 40), 0.0)
    batcher.add(record(2, 40), 0.0)
    (batch,) = batcher.add(record(3, 40), 0.0)
    assert ids(batch) == ["1", "2"]
    assert len(batcher) == 1


def test_window_is_due_after_its_seconds_from_the_first_record():
    batcher = LaneBatcher("lane-0", BatchLimits(batch_size=100, window_seconds=2))
    assert not batcher.due(10.0) and batcher.deadline() is None
    batcher.add(record(1), 10.0)
    batcher.add(record(2), 11.5)
    assert batcher.deadline() == 12.0
    assert not batcher.due(11.9)
    assert batcher.due(12.0)
    assert ids(batcher.flush()) == ["1", "2"]
    assert batcher.flush() is None


def test_window_zero_is_due_at_once_and_no_record_is_too_big_unless_over_the_limit():
    limits = BatchLimits(batch_size=10, window_seconds=0, envelope_bytes=14, max_bytes=100)
    batcher = LaneBatcher("lane-0", limits)
    batcher.add(record(1), 5.0)
    assert batcher.due(5.0)
    assert limits.fits_alone(record(2, 85))
    assert not limits.fits_alone(record(3, 86))


def test_extend_makes_exactly_the_batches_add_makes() -> None:
    # Given runs of records of random sizes around the byte limit, for several batch sizes
    import random

    rng = random.Random(7)
    for trial in range(300):
        limits = BatchLimits(rng.choice([1, 2, 3, 5, 10]), 1.0, envelope_bytes=14,
                             max_bytes=rng.choice([60, 100, 400]))
        one, many = LaneBatcher("lane", limits), LaneBatcher("lane", limits)
        made_one: list[list[str]] = []
        made_many: list[list[str]] = []
        serial = 0
        for _ in range(rng.randint(1, 6)):
            run = []
            for _ in range(rng.randint(1, 12)):
                run.append(record(serial, rng.randint(1, 40)))
                serial += 1
            # When one batcher gets the run record by record and the other all at once
            for r in run:
                made_one += [ids(b) for b in one.add(r, float(trial))]
            made_many += [ids(b) for b in many.extend(run, [r.size_bytes for r in run],
                                                      float(trial))]
            # Then they close the same batches and hold the same open batch
            assert made_many == made_one
            assert len(many) == len(one) and many.deadline() == one.deadline()
        tail_one, tail_many = one.flush(), many.flush()
        assert (tail_one is None) == (tail_many is None)
        if tail_one is not None and tail_many is not None:
            assert ids(tail_many) == ids(tail_one)
