"""ShardReader order across resharding (parents before children, splits and merges) and
lease loss (no checkpoint after a lease is gone), with the fakes of test_shard_reader."""

from __future__ import annotations

from esm.clock import FakeClock
from esm.records import Record
from tests.unit.shards.test_shard_reader import (
    FakeStream,
    MemoryLeaseTable,
    checkpoint_of,
    rig,
    seqs,
)


def fetched(stream: FakeStream, shard_id: str) -> int:
    return [s for s, _ in stream.reads].count(shard_id)


def of(records: list[Record], lane: str) -> list[Record]:
    return [r for r in records if r.lane == lane]


# -- parents before children ---------------------------------------------------------------


def test_split_children_are_read_only_after_the_parent_is_read_to_its_end_and_acked():
    # Given a closed parent with three records and its two children
    clock = FakeClock()
    stream = FakeStream(clock)
    stream.add("p", 101, 102, 103, closed=True)
    stream.add("c1", 201, parents=("p",))
    stream.add("c2", 301, parents=("p",))
    r = rig(clock, stream)
    r.listener.checkpoint_of = lambda lane: checkpoint_of(r, lane)
    # When the parent's records are handed out but not yet acked
    in_flight = [x for _ in range(5) for x in r.poll()]
    # Then nothing of the children is read, not even fetched
    assert seqs(in_flight) == [101, 102, 103]
    assert fetched(stream, "c1") == fetched(stream, "c2") == 0
    # When the parent is acked / Then it is finished, released, revoked, and children follow
    r.reader.ack(in_flight)
    assert sorted(seqs(r.drain(5))) == [201, 301]
    assert checkpoint_of(r, "p") == "SHARD_END" and r.table.rows["p"].owner is None
    assert r.listener.revoked == ["p"]
    # And the core was told the lane was ending while it still held it (resharding closes
    # a tumbling window, whose closed state is saved on the lease before SHARD_END)
    assert r.listener.ending == [("p", "103")]


def test_merged_child_waits_for_both_parents():
    # Given two closed parents merged into one child
    clock = FakeClock()
    stream = FakeStream(clock)
    stream.add("a", 101, 102, closed=True)
    stream.add("b", 201, closed=True)
    stream.add("m", 301, parents=("a", "b"))
    r = rig(clock, stream)
    out = [x for _ in range(5) for x in r.poll()]
    assert sorted(seqs(out)) == [101, 102, 201]
    # When only the first parent is acked (the second one's batch is still in flight)
    r.reader.ack(of(out, "a"))
    more = [x for _ in range(5) for x in r.poll()]
    # Then the child is still not read
    assert more == [] and fetched(stream, "m") == 0
    assert checkpoint_of(r, "a") == "SHARD_END"
    # When the second parent is acked too / Then the child is read
    r.reader.ack(of(out, "b"))
    assert seqs(r.drain(5)) == [301]
    assert sorted(r.listener.revoked) == ["a", "b"]


def test_a_shard_split_while_being_read_hands_its_children_over_from_their_start():
    # Given an open shard that was read and acked
    clock = FakeClock()
    stream = FakeStream(clock)
    stream.add("p", 101)
    r = rig(clock, stream, start="LATEST")
    assert r.poll() == []  # the LATEST iterator is taken here, after 101
    stream.append("p", 102)
    assert seqs(r.drain(3)) == [102]
    # When it is split: it gets one last record and closes, and children appear with records
    stream.append("p", 103)
    stream.shards["p"].closed = True
    stream.add("c1", 201, 202, parents=("p",))
    stream.add("c2", 301, parents=("p",))
    seen = r.drain(10)
    # Then the parent's tail comes first, then every child record (children start at
    # TRIM_HORIZON although the mapping starts at LATEST, so nothing written after the
    # split is lost)
    assert seqs(seen)[0] == 103
    assert sorted(seqs(seen)[1:]) == [201, 202, 301]
    assert r.table.rows["c1"].parent_ids == ("p",)
    assert {"c1", "c2"} <= set(r.listener.assigned)


def test_a_child_held_by_another_replica_waits_until_the_parents_owner_finishes_it():
    # Given two replicas on one lease table: "a" holds the parent, "b" took the child
    clock = FakeClock()
    stream = FakeStream(clock)
    table = MemoryLeaseTable()
    stream.add("1-parent", 101, 102, closed=True)
    stream.add("2-child", 201, parents=("1-parent",))
    a = rig(clock, stream, table, worker="a")
    b = rig(clock, stream, table, worker="b")
    assert table.rows["2-child"].owner == "b" and table.rows["1-parent"].owner == "a"
    # When b polls while a has not finished the parent
    assert b.drain(5) == []
    assert fetched(stream, "2-child") == 0
    # When a reads and acks the parent to its end
    assert seqs(a.drain(5)) == [101, 102]
    # Then b reads the child once it sees the parent finished
    assert seqs(b.drain(10)) == [201]


# -- leases lost ---------------------------------------------------------------------------


def test_lease_lost_mid_batch_revokes_the_lane_and_no_checkpoint_is_written_afterwards():
    # Given replica "a" with a batch of 101-103 in flight and 104-106 buffered
    clock = FakeClock()
    stream = FakeStream(clock)
    stream.add("s", 101, 102, 103, 104, 105, 106)
    r = rig(clock, stream)
    in_flight = r.poll(max_records=3)
    assert seqs(in_flight) == [101, 102, 103]
    # When replica "b" takes the lease, and the core settles the in-flight batch while the
    # lane is being revoked (its drain), at a's next renewal
    r.table.steal("s", "b")
    r.listener.on_revoke = lambda lanes: r.reader.ack(in_flight)
    clock.advance(4.0)
    after = r.drain(5)
    # Then the lane is revoked, the buffered records are never handed out, and a wrote no
    # checkpoint: b resumes from the checkpoint it found
    assert r.listener.revoked == ["s"]
    assert after == []
    assert [w for w in r.table.written if w[1] == "a"] == []
    assert checkpoint_of(r, "s") == "TRIM_HORIZON"
    assert "s" not in r.reader.lag()
    # and a late ack for the lane writes nothing either
    r.reader.ack(in_flight)
    assert [w for w in r.table.written if w[1] == "a"] == []


def test_a_checkpoint_refused_for_a_lost_lease_stops_the_shard_at_once():
    # Given a batch in flight and more records buffered, and the lease taken by "b" before
    # a's next renewal
    clock = FakeClock()
    stream = FakeStream(clock)
    stream.add("s", 101, 102, 103, 104)
    r = rig(clock, stream)
    in_flight = r.poll(max_records=2)
    r.table.steal("s", "b")
    # When the batch is acked (the checkpoint is refused) and the core polls again
    r.reader.ack(in_flight)
    after = r.poll()
    # Then the buffered records are not handed out (b will deliver them) and the lane is
    # revoked at once, not at the next renewal
    assert after == []
    assert r.listener.revoked == ["s"]
    assert r.table.written == []
    assert r.table.rows["s"].owner == "b"


def test_close_hands_every_lease_back_for_the_next_owner():
    clock = FakeClock()
    stream = FakeStream(clock)
    stream.add("s", 101)
    stream.add("t", 201)
    r = rig(clock, stream)
    r.reader.close()
    assert {row.owner for row in r.table.rows.values()} == {None}
    assert r.reader.shards == {}
