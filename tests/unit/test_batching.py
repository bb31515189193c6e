"""LaneBatcher: a batch closes on count, window or the 6 MB limit, whichever comes first
(ESM-SPEC §1.4, checklist 11)."""

from __future__ import annotations

from esm.batching import BatchLimits, LaneBatcher
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
