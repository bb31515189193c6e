"""esm.pipeline.positions.LaneLedger: only a finished, contiguous prefix is ever committable
(DESIGN §3, ESM-SPEC §8 checklist 32, 56)."""

from __future__ import annotations

from esm.pipeline.positions import LaneLedger
from esm.records import Record


def records(count: int, start: int = 0) -> list[Record]:
    return [Record("lane-0", str(n), str(n), {}, 10, 0.0) for n in range(start, start + count)]


def test_batches_settling_in_order_are_committable_at_once() -> None:
    # Given two batches tracked in poll order
    ledger = LaneLedger()
    first, second = records(3), records(2, 3)
    for r in first + second:
        ledger.track(r)
    # When they finish in order / Then each is committable as it finishes
    assert ledger.finish(tuple(first)) == first
    assert ledger.finish(second) == second
    assert len(ledger) == 0


def test_filtered_records_wait_behind_an_unfinished_one() -> None:
    # Given an in-flight record followed by two filtered-out (already finished) ones
    ledger = LaneLedger()
    flight, *filtered = records(3)
    ledger.track(flight)
    for r in filtered:
        ledger.track(r, finished=True)
    # Then nothing is committable until the in-flight one finishes
    assert ledger.pop_finished() == []
    assert len(ledger) == 3
    # When it finishes / Then all three are, in poll order
    assert ledger.finish([flight]) == [flight, *filtered]


def test_a_later_batch_finishing_first_is_held_until_the_earlier_one_finishes() -> None:
    ledger = LaneLedger()
    first, second = records(2), records(2, 2)
    for r in first + second:
        ledger.track(r)
    assert ledger.finish(second) == []
    assert ledger.finish(first) == first + second


def test_part_of_the_oldest_batch_finishing_commits_only_its_prefix() -> None:
    ledger = LaneLedger()
    batch = records(4)
    for r in batch:
        ledger.track(r)
    assert ledger.finish(batch[1:3]) == []
    assert ledger.finish(batch[:1]) == batch[:3]
    assert len(ledger) == 1
    assert ledger.finish(batch[3:]) == batch[3:]


def test_long_runs_keep_order_across_compaction() -> None:
    # Given many batches, some with a filtered tail
    ledger = LaneLedger()
    committed: list[Record] = []
    expected: list[Record] = []
    for n in range(50):
        batch = records(3, n * 4)
        filtered = records(1, n * 4 + 3)[0]
        for r in batch:
            ledger.track(r)
        ledger.track(filtered, finished=n % 2 == 0)
        expected += [*batch, filtered]
        committed += ledger.finish(batch)
        if n % 2:
            committed += ledger.finish([filtered])
    # Then everything was committed exactly once, in poll order
    assert committed == expected
    assert len(ledger) == 0


def test_committed_records_are_not_kept_alive_by_the_ledger() -> None:
    # Given a lane with one record still in flight behind many finished batches
    ledger = LaneLedger()
    for n in range(100):
        batch = records(10, n * 10)
        for r in batch:
            ledger.track(r)
        ledger.finish(batch)
    stuck = records(1, 5000)[0]
    ledger.track(stuck)
    # Then the ledger holds no more than that record (white-box: memory stays bounded)
    assert len(ledger) == 1
    assert len(ledger._entries) == 1


def test_a_committed_batch_is_released_even_while_later_ones_are_outstanding() -> None:
    # Given a small committed batch ahead of a large outstanding one
    ledger = LaneLedger()
    first, second = records(10), records(30, 10)
    for r in first + second:
        ledger.track(r)
    assert ledger.finish(first) == first
    # Then the ledger no longer references the committed records (white-box: memory)
    assert all(entry is None for entry in ledger._entries[:10])
    assert len(ledger) == 30
    # And the outstanding batch still commits in order, emptying the ledger
    assert ledger.finish(second) == second
    assert ledger._entries == []
