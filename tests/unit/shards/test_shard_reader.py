"""ShardReader with a fake StreamApi, an in-memory lease table and a fake clock (no server):
iterator recovery (expired, trimmed), shards that disappear, throttling, the per-shard poll
rate, pause/resume, fair hand-out and lag(). Lease and resharding rules:
test_shard_reader_leases.py."""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from connectors.shards.leases import Lease, Leaser
from connectors.shards.model import (
    LATEST,
    TRIM_HORIZON,
    ExpiredIterator,
    Page,
    ShardGone,
    ShardInfo,
    Throttled,
    TrimmedData,
    is_sequence,
)
from connectors.shards.reader import ShardReader
from esm.clock import FakeClock
from esm.records import Record

# -- fakes ---------------------------------------------------------------------------------


@dataclass
class FakeShard:
    shard_id: str
    parents: tuple[str, ...] = ()
    records: list[dict[str, Any]] = field(default_factory=list)
    closed: bool = False
    trimmed: int = 0  # records before this index are past the stream's retention
    gone: bool = False
    throttles: int = 0  # the next N reads are throttled


class FakeStream:
    """A StreamApi over in-memory shards. Iterators are `<shard>#<index>#<generation>`;
    `expire` invalidates every iterator of a shard issued so far."""

    stream_arn = "arn:aws:kinesis:us-east-1:000000000000:stream/fake"

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.shards: dict[str, FakeShard] = {}
        self.generation = 0
        self.expired_before: dict[str, int] = {}
        self.iterator_calls: list[tuple[str, str]] = []
        self.reads: list[tuple[str, float]] = []  # shard, monotonic time

    def add(self, shard_id: str, *seqs: int, parents: tuple[str, ...] = (),
            closed: bool = False) -> FakeShard:
        shard = FakeShard(shard_id, parents, [{"seq": str(s)} for s in seqs], closed)
        self.shards[shard_id] = shard
        return shard

    def append(self, shard_id: str, *seqs: int) -> None:
        self.shards[shard_id].records.extend({"seq": str(s)} for s in seqs)

    def expire(self, shard_id: str) -> None:
        self.generation += 1
        self.expired_before[shard_id] = self.generation

    def list_shards(self) -> list[ShardInfo]:
        return [ShardInfo(s.shard_id, s.parents,
                          s.records[-1]["seq"] if s.closed and s.records else None)
                for s in self.shards.values() if not s.gone]

    def _shard(self, shard_id: str) -> FakeShard:
        shard = self.shards.get(shard_id)
        if shard is None or shard.gone:
            raise ShardGone(shard_id)
        return shard

    def iterator(self, shard_id: str, checkpoint: str) -> str:
        self.iterator_calls.append((shard_id, checkpoint))
        shard = self._shard(shard_id)
        if is_sequence(checkpoint):
            index = sum(1 for r in shard.records if int(r["seq"]) <= int(checkpoint))
            if index < shard.trimmed:
                raise TrimmedData(f"{shard_id}: {checkpoint} is past retention")
        elif checkpoint == LATEST:
            index = len(shard.records)
        else:
            index = shard.trimmed
        return f"{shard_id}#{index}#{self.generation}"

    def read(self, iterator: str, limit: int) -> Page:
        shard_id, index_text, generation = iterator.split("#")
        self.reads.append((shard_id, self.clock.monotonic()))
        shard = self._shard(shard_id)
        if int(generation) < self.expired_before.get(shard_id, 0):
            raise ExpiredIterator(iterator)
        if shard.throttles:
            shard.throttles -= 1
            raise Throttled(shard_id)
        index = max(int(index_text), shard.trimmed)
        page = shard.records[index:index + limit]
        end = index + len(page)
        done = shard.closed and end >= len(shard.records)
        return Page(page, None if done else f"{shard_id}#{end}#{generation}")

    def sequence_of(self, raw: dict[str, Any]) -> str:
        return str(raw["seq"])


class MemoryLeaseTable:
    """LeaseTable with the conditional semantics of the real ones; remembers every
    checkpoint write that succeeded, as (shard, owner, checkpoint)."""

    def __init__(self) -> None:
        self.rows: dict[str, Lease] = {}
        self.written: list[tuple[str, str, str]] = []

    def list(self, mapping: str) -> list[Lease]:
        return sorted(self.rows.values(), key=lambda lease: lease.shard_id)

    def create(self, mapping: str, lease: Lease) -> bool:
        return self.rows.setdefault(lease.shard_id, lease) is lease

    def _swap(self, shard_id: str, ok: bool, **changes: Any) -> bool:
        if ok:
            self.rows[shard_id] = replace(self.rows[shard_id], **changes)
        return ok

    def renew(self, mapping: str, shard_id: str, owner: str, counter: int) -> bool:
        row = self.rows.get(shard_id)
        ok = row is not None and (row.owner, row.counter) == (owner, counter)
        return self._swap(shard_id, ok, counter=counter + 1)

    def take(self, mapping: str, shard_id: str, owner: str, counter: int) -> bool:
        row = self.rows.get(shard_id)
        ok = row is not None and row.counter == counter
        return self._swap(shard_id, ok, owner=owner, counter=counter + 1)

    def checkpoint(self, mapping: str, shard_id: str, owner: str, checkpoint: str) -> bool:
        row = self.rows.get(shard_id)
        ok = row is not None and row.owner == owner
        if ok:
            self.written.append((shard_id, owner, checkpoint))
        return self._swap(shard_id, ok, checkpoint=checkpoint)

    def release(self, mapping: str, shard_id: str, owner: str) -> bool:
        row = self.rows.get(shard_id)
        return self._swap(shard_id, row is not None and row.owner == owner, owner=None)

    def close(self) -> None:
        pass

    def steal(self, shard_id: str, owner: str) -> None:
        """Another replica takes the lease (as `Leaser._take` would)."""
        assert self.take("m", shard_id, owner, self.rows[shard_id].counter)


class Listener:
    """The core's side: remembers lane changes; `on_revoke` runs inside lanes_revoked, as
    the core's drain of in-flight batches does."""

    def __init__(self) -> None:
        self.assigned: list[str] = []
        self.revoked: list[str] = []
        self.ending: list[tuple[str, str]] = []  # lane, its checkpoint when told
        self.on_revoke: Any = None
        self.checkpoint_of: Any = None

    def lanes_assigned(self, lanes: Collection[str]) -> None:
        self.assigned.extend(sorted(lanes))

    def lane_ending(self, lane: str) -> None:
        self.ending.append((lane, self.checkpoint_of(lane) if self.checkpoint_of else ""))

    def lanes_revoked(self, lanes: Collection[str]) -> None:
        self.revoked.extend(sorted(lanes))
        if self.on_revoke is not None:
            self.on_revoke(lanes)


def convert(raw: dict[str, Any], shard_id: str) -> Record:
    return Record(lane=shard_id, position=raw["seq"], item_id=raw["seq"], payload=raw,
                  size_bytes=16, timestamp=0.0)


@dataclass
class Rig:
    clock: FakeClock
    stream: FakeStream
    table: MemoryLeaseTable
    listener: Listener
    reader: ShardReader

    def poll(self, max_records: int = 100, timeout_seconds: float = 0.5) -> list[Record]:
        return self.reader.poll(max_records, timeout_seconds)

    def drain(self, rounds: int = 20, max_records: int = 100) -> list[Record]:
        """Poll and ack like the core, `rounds` times."""
        seen: list[Record] = []
        for _ in range(rounds):
            records = self.poll(max_records)
            seen.extend(records)
            if records:
                self.reader.ack(records)
        return seen


def rig(clock: FakeClock | None = None, stream: FakeStream | None = None,
        table: MemoryLeaseTable | None = None, *, start: str = TRIM_HORIZON,
        worker: str = "a", poll_interval_seconds: float = 1.0,
        max_records_per_fetch: int = 100, open_now: bool = True) -> Rig:
    clock = clock or FakeClock()
    stream = stream or FakeStream(clock)
    table = table or MemoryLeaseTable()
    leaser = Leaser(table, "m", worker, 9.0, clock)
    reader = ShardReader(
        api=stream, leaser=leaser, convert=convert, clock=clock, stop=threading.Event(),
        starting_checkpoint=start, poll_interval_seconds=poll_interval_seconds,
        max_records_per_fetch=max_records_per_fetch, discovery_interval_seconds=30.0)
    built = Rig(clock, stream, table, Listener(), reader)
    if open_now:
        reader.open(built.listener)
    return built


def seqs(records: list[Record]) -> list[int]:
    return [int(r.position) for r in records]


def checkpoint_of(r: Rig, shard_id: str) -> str:
    return r.table.rows[shard_id].checkpoint


# -- iterator recovery --------------------------------------------------------------------


def test_expired_iterator_resumes_after_the_last_acked_record_without_gaps_or_repeats():
    # Given a shard read and acked up to 103
    clock = FakeClock()
    stream = FakeStream(clock)
    stream.add("s", 101, 102, 103)
    r = rig(clock, stream)
    assert seqs(r.drain(3)) == [101, 102, 103]
    assert checkpoint_of(r, "s") == "103"
    # When more records arrive and the shard's iterator has expired meanwhile
    stream.append("s", 104, 105)
    stream.expire("s")
    # Then a new iterator starts after 103, and 104, 105 arrive once
    assert seqs(r.drain(5)) == [104, 105]
    assert stream.iterator_calls[-1] == ("s", "103")


def test_expired_iterator_with_unacked_records_continues_after_the_last_record_read():
    # Given records 101-103 handed out but not yet acked (a batch in flight)
    clock = FakeClock()
    stream = FakeStream(clock)
    stream.add("s", 101, 102, 103)
    r = rig(clock, stream)
    in_flight = r.poll()
    assert seqs(in_flight) == [101, 102, 103]
    # When the iterator expires and more records arrive
    stream.expire("s")
    stream.append("s", 104)
    clock.advance(1.0)
    later = r.poll()
    # Then reading continues after 103 (not from the checkpoint): nothing is repeated
    assert seqs(later) == [104]
    assert stream.iterator_calls[-1] == ("s", "103")
    # and acking both batches in lane order checkpoints the last one
    r.reader.ack(in_flight)
    assert checkpoint_of(r, "s") == "103"
    r.reader.ack(later)
    assert checkpoint_of(r, "s") == "104"


def test_an_iterator_that_expires_again_at_once_is_an_empty_read_not_a_crash():
    # Given a shard whose every iterator is already expired when read (clock skew, a slow
    # service): expire() before each read via a wrapper
    clock = FakeClock()
    stream = FakeStream(clock)
    stream.add("s", 101)
    original = stream.read

    def always_expired(iterator: str, limit: int) -> Page:
        stream.expire("s")
        return original(iterator, limit)

    stream.read = always_expired  # type: ignore[method-assign]
    r = rig(clock, stream)
    # When the reader polls / Then it returns nothing and raises nothing
    assert r.poll() == []
    # and once the service recovers the record arrives
    stream.read = original  # type: ignore[method-assign]
    assert seqs(r.drain(3)) == [101]


def test_checkpoint_past_retention_restarts_at_trim_horizon_with_a_warning(caplog):
    # Given a lease checkpointed at 102, and records up to 104 trimmed by retention
    clock = FakeClock()
    stream = FakeStream(clock)
    shard = stream.add("s", 101, 102, 103, 104, 105, 106)
    shard.trimmed = 4
    table = MemoryLeaseTable()
    table.create("m", Lease("s", None, 0, "102"))
    # When the reader starts
    with caplog.at_level(logging.WARNING, logger="connectors.shards.reader"):
        r = rig(clock, stream, table)
        records = r.drain(3)
    # Then it continues at the oldest record still kept, and says records were lost
    assert seqs(records) == [105, 106]
    assert stream.iterator_calls[-1] == ("s", TRIM_HORIZON)
    assert any("past the stream's retention" in m and "102" in m for m in caplog.messages)


def test_data_trimmed_under_a_live_iterator_restarts_at_trim_horizon(caplog):
    # Given a shard read up to 102 and then left alone (paused) while retention trims 103-104
    clock = FakeClock()
    stream = FakeStream(clock)
    shard = stream.add("s", 101, 102)
    r = rig(clock, stream)
    assert seqs(r.drain(3)) == [101, 102]
    stream.append("s", 103, 104, 105)
    shard.trimmed = 4
    original = stream.read

    def trimmed_read(iterator: str, limit: int) -> Page:
        if int(iterator.split("#")[1]) < shard.trimmed:
            raise TrimmedData(iterator)
        return original(iterator, limit)

    stream.read = trimmed_read  # type: ignore[method-assign]
    # When it reads again / Then it restarts at TRIM_HORIZON with a warning, not a crash
    with caplog.at_level(logging.WARNING, logger="connectors.shards.reader"):
        assert seqs(r.drain(3)) == [105]
    assert any("past the stream's retention" in m for m in caplog.messages)


# -- shards that disappear, throttling ------------------------------------------------------


def test_a_shard_that_disappears_is_finished_after_its_records_are_acked():
    # Given a shard with records handed out, and its child
    clock = FakeClock()
    stream = FakeStream(clock)
    stream.add("s", 101, 102)
    r = rig(clock, stream)
    in_flight = r.poll()
    # When the shard disappears (trimmed away after retention) before the batch is acked
    stream.shards["s"].gone = True
    assert r.poll() == []
    assert "s" not in r.listener.revoked  # its batch is still in flight
    r.reader.ack(in_flight)
    r.drain(3)
    # Then its checkpoint holds the acked record, then SHARD_END, and the lane is revoked
    assert ("s", "a", "102") in r.table.written
    assert checkpoint_of(r, "s") == "SHARD_END"
    assert r.listener.revoked == ["s"]
    assert "s" not in r.reader.shards


def test_the_child_of_a_vanished_parent_is_read_once_the_parent_is_finished():
    # Given a parent whose lease exists but which is gone from the service, and its child
    clock = FakeClock()
    stream = FakeStream(clock)
    stream.add("p", 101, closed=True)
    stream.add("c", 201, parents=("p",))
    r = rig(clock, stream)
    stream.shards["p"].gone = True
    # When the reader runs / Then the parent is finished and the child read from its start
    assert seqs(r.drain(5)) == [201]
    assert checkpoint_of(r, "p") == "SHARD_END"


def test_throttled_reads_count_as_empty_reads_and_keep_the_iterator():
    # Given a shard whose next two GetRecords are throttled
    clock = FakeClock()
    stream = FakeStream(clock)
    stream.add("s", 101, 102).throttles = 2
    r = rig(clock, stream)
    # When the reader polls for up to 0.5 s at a time
    first = r.poll()
    # Then a throttled read returns nothing and raises nothing
    assert first == []
    # and later the records arrive with the same iterator (no new GetShardIterator)
    assert seqs(r.drain(5)) == [101, 102]
    assert stream.iterator_calls == [("s", TRIM_HORIZON)]
    assert len(stream.reads) >= 3


def test_throttled_reads_still_respect_the_poll_interval():
    # Given a shard that is throttled five times
    clock = FakeClock()
    stream = FakeStream(clock)
    stream.add("s", 101).throttles = 5
    r = rig(clock, stream, poll_interval_seconds=1.0)
    # When the reader polls until the record arrives
    assert seqs(r.drain(10)) == [101]
    # Then no two reads came less than a poll interval apart
    times = [t for shard, t in stream.reads if shard == "s"]
    assert all(b - a >= 1.0 for a, b in zip(times, times[1:], strict=False))


# -- poll rate, pause/resume, fairness, lag -------------------------------------------------


@pytest.mark.parametrize("interval", [0.25, 1.0])
def test_no_more_than_one_get_records_per_shard_per_poll_interval(interval: float):
    # Given two shards that always have more records than one fetch returns
    clock = FakeClock()
    stream = FakeStream(clock)
    stream.add("s1", *range(100, 160))
    stream.add("s2", *range(200, 260))
    r = rig(clock, stream, poll_interval_seconds=interval, max_records_per_fetch=2)
    # When the core polls and acks eagerly for a while, with short poll timeouts
    start = clock.monotonic()
    seen = r.drain(40)
    elapsed = clock.monotonic() - start
    # Then each shard was read at most once per interval, and records still flowed
    for shard in ("s1", "s2"):
        times = [t for s, t in stream.reads if s == shard]
        assert all(b - a >= interval for a, b in zip(times, times[1:], strict=False))
        assert len(times) <= elapsed / interval + 1
    assert len(seen) >= 20
    assert seqs([x for x in seen if x.lane == "s1"]) == sorted(seqs([x for x in seen
                                                                    if x.lane == "s1"]))


def test_paused_shard_is_neither_handed_out_nor_fetched_until_resumed():
    # Given two shards, one of them paused with records already buffered
    clock = FakeClock()
    stream = FakeStream(clock)
    stream.add("s1", 101, 102, 103)
    stream.add("s2")
    r = rig(clock, stream)
    first = r.poll(max_records=1)
    assert seqs(first) == [101]
    r.reader.ack(first)
    r.reader.pause(["s1"])
    stream.append("s1", 104)
    stream.append("s2", 201)
    reads_before = [s for s, _ in stream.reads].count("s1")
    # When the core polls while s1 is paused
    during = r.drain(5)
    # Then only s2's record comes, and s1 is not even fetched
    assert seqs(during) == [201]
    assert [s for s, _ in stream.reads].count("s1") == reads_before
    # When s1 is resumed / Then its buffered and new records come, in order
    r.reader.resume(["s1"])
    assert seqs(r.drain(5)) == [102, 103, 104]


def test_pause_and_resume_ignore_lanes_the_reader_does_not_hold():
    r = rig()
    r.reader.pause(["nope"])
    r.reader.resume(["nope"])
    assert r.poll() == []


def test_a_busy_shard_does_not_starve_the_others():
    # Given two shards with many buffered records each and a small poll size
    clock = FakeClock()
    stream = FakeStream(clock)
    stream.add("s1", *range(100, 150))
    stream.add("s2", *range(200, 250))
    r = rig(clock, stream, max_records_per_fetch=50)
    # When the core takes three records per poll, four times
    lanes = [x.lane for _ in range(4) for x in r.poll(max_records=3)]
    # Then both shards were served
    assert set(lanes) == {"s1", "s2"}


def test_lag_counts_records_read_but_not_yet_acked_per_held_shard():
    # Given a shard with five records of which two were handed out
    clock = FakeClock()
    stream = FakeStream(clock)
    stream.add("s", 101, 102, 103, 104, 105)
    stream.add("t")
    r = rig(clock, stream)
    out = r.poll(max_records=2)
    # Then lag counts the two in flight and the three buffered, and zero for an idle shard
    assert r.reader.lag() == {"s": 5.0, "t": 0.0}
    # When the two are acked / Then lag drops by two
    r.reader.ack(out)
    assert r.reader.lag() == {"s": 3.0, "t": 0.0}
