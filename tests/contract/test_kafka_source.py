# ruff: noqa: F811  (pytest fixtures are imported by name, then requested by name)
"""Contract tests of the Kafka source against a real KRaft broker (tests/servers/kafka_server).

The source is driven directly, as the reader thread drives it: poll, ack, pause/resume,
several instances in one group, close + new instance, broker restart.
"""

from __future__ import annotations

import base64
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from connectors.kafka.source import KafkaSource
from esm.clock import SystemClock
from esm.errors import SourceUnavailable
from esm.interfaces import ConnectorContext
from esm.records import Record
from tests.servers.kafka_server import KafkaServer, kafka_server  # noqa: F401

pytestmark = pytest.mark.integration


class FakeLanes:
    """LaneListener that records changes; `on_revoke` plays the core settling in-flight work."""

    def __init__(self) -> None:
        self.assigned: set[str] = set()
        self.revoked: list[list[str]] = []
        self.on_revoke: Callable[[Collection[str]], None] | None = None
        self.on_assign: Callable[[Collection[str]], None] | None = None

    def lanes_assigned(self, lanes: Collection[str]) -> None:
        self.assigned |= set(lanes)
        if self.on_assign is not None:
            self.on_assign(lanes)

    def lanes_revoked(self, lanes: Collection[str]) -> None:
        if self.on_revoke is not None:
            self.on_revoke(lanes)
        self.assigned -= set(lanes)
        self.revoked.append(sorted(lanes))


def make_topic(server: KafkaServer, partitions: int) -> str:
    topic = f"t-{uuid.uuid4().hex[:10]}"
    admin = KafkaAdminClient(bootstrap_servers=server.bootstrap)
    try:
        admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        admin.close()
    return topic


def produce(server: KafkaServer, topic: str, count: int, partitions: int, start: int = 0,
            **extra: object) -> None:
    producer = KafkaProducer(bootstrap_servers=server.bootstrap)
    try:
        for n in range(start, start + count):
            producer.send(topic, value=f'{{"n": {n}}}'.encode(), key=f"k{n}".encode(),
                          partition=n % partitions, **extra)
        producer.flush(30)
    finally:
        producer.close()


def open_source(server: KafkaServer, topic: str, group: str, lanes: FakeLanes | None = None,
                **settings: object) -> tuple[KafkaSource, FakeLanes]:
    options: dict[str, object] = {"bootstrap_servers": (server.bootstrap,), "topics": (topic,),
                                  "consumer_group_id": group, "session_timeout_seconds": 6.0}
    options.update(settings)
    context = ConnectorContext(mapping="contract", stop=threading.Event(), clock=SystemClock())
    source = KafkaSource(KafkaSource.Settings(**options), context)  # type: ignore[arg-type]
    lanes = lanes or FakeLanes()
    source.open(lanes)
    return source, lanes


def numbers(records: Iterable[Record]) -> list[int]:
    return [int(base64.b64decode(r.payload["value"])[6:-1]) for r in records]


def poll_until(sources: list[KafkaSource], done: Callable[[list[Record]], bool],
               timeout_seconds: float = 30.0, ack: bool = False) -> list[Record]:
    got: list[Record] = []
    deadline = time.monotonic() + timeout_seconds
    while not done(got):
        assert time.monotonic() < deadline, f"timed out with {len(got)} records"
        for source in sources:
            batch = list(source.poll(500, 0.2))
            got.extend(batch)
            if ack and batch:
                source.ack(batch)
    return got


def poll_in_threads(sources: list[KafkaSource], done: Callable[[list[Record]], bool],
                    timeout_seconds: float = 30.0) -> list[Record]:
    """Each member polls (and acks) on its own thread, as separate daemons would: a group
    join waits for every member, so one thread taking turns can stall the rebalance."""
    got: list[Record] = []
    lock = threading.Lock()
    finished = threading.Event()
    errors: list[BaseException] = []

    def member(source: KafkaSource) -> None:
        try:
            while not finished.is_set():
                batch = list(source.poll(500, 0.2))
                if batch:
                    source.ack(batch)
                    with lock:
                        got.extend(batch)
        except BaseException as exc:  # surfaced in the test thread below
            errors.append(exc)

    threads = [threading.Thread(target=member, args=(s,), daemon=True) for s in sources]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout_seconds
    try:
        while not errors and time.monotonic() < deadline:
            with lock:
                if done(list(got)):
                    break
            time.sleep(0.05)
    finally:
        finished.set()
        for thread in threads:
            thread.join(10)
    assert not errors, f"a member failed: {errors[0]!r}"
    with lock:
        assert done(list(got)), f"timed out with {len(got)} records"
        return list(got)


def by_lane(records: Iterable[Record]) -> dict[str, list[int]]:
    lanes: dict[str, list[int]] = {}
    for r in records:
        lanes.setdefault(r.lane, []).append(r.payload["offset"])
    return lanes


def test_delivers_every_partition_in_offset_order_with_aws_record_shape(
        kafka_server: KafkaServer) -> None:
    # Given 30 records over 3 partitions, one with headers
    topic = make_topic(kafka_server, 3)
    produce(kafka_server, topic, 30, 3, headers=[("h", "ë".encode())])
    source, lanes = open_source(kafka_server, topic, f"g-{uuid.uuid4().hex}")
    try:
        # When the source is polled until everything arrived
        got = poll_until([source], lambda g: len(g) >= 30)
        # Then each lane is the topic-partition, in offset order, with the AWS record shape
        assert lanes.assigned == {f"{topic}-0", f"{topic}-1", f"{topic}-2"}
        assert {lane: offs for lane, offs in by_lane(got).items()} == {
            f"{topic}-{p}": list(range(10)) for p in range(3)}
        first = got[0].payload
        assert first["headers"] == [{"h": [-61, -85]}]
        assert base64.b64decode(first["key"]).startswith(b"k")
        assert first["timestampType"] == "CREATE_TIME"
        assert got[0].filter_view is not None and "n" in got[0].filter_view["value"]
        event = source.build_event(got[:2])
        assert event["eventSource"] == "SelfManagedKafka"
        assert event["bootstrapServers"] == kafka_server.bootstrap
    finally:
        source.close()


def test_commits_only_acked_records_so_a_new_instance_resumes_after_them(
        kafka_server: KafkaServer) -> None:
    # Given 10 records on one partition, of which the first 4 are acked
    topic, group = make_topic(kafka_server, 1), f"g-{uuid.uuid4().hex}"
    produce(kafka_server, topic, 10, 1)
    source, _ = open_source(kafka_server, topic, group)
    got = poll_until([source], lambda g: len(g) >= 10)
    source.ack(got[:4])
    assert source.lag() == {f"{topic}-0": 6.0}
    source.close()
    # When a new instance of the same group starts (after a crash, say)
    again, _ = open_source(kafka_server, topic, group, starting_position="LATEST")
    try:
        redelivered = poll_until([again], lambda g: len(g) >= 6)
        # Then the unacked records come again, and only those (group offsets beat LATEST)
        assert [r.payload["offset"] for r in redelivered] == [4, 5, 6, 7, 8, 9]
    finally:
        again.close()


def test_new_group_with_latest_skips_records_written_before_it_joined(
        kafka_server: KafkaServer) -> None:
    topic = make_topic(kafka_server, 1)
    produce(kafka_server, topic, 5, 1)
    source, lanes = open_source(kafka_server, topic, f"g-{uuid.uuid4().hex}",
                                starting_position="LATEST")
    try:
        poll_until([source], lambda g: bool(lanes.assigned))
        source.poll(100, 1.0)  # let the position reset to the log end
        produce(kafka_server, topic, 3, 1, start=100)
        got = poll_until([source], lambda g: len(g) >= 3)
        assert numbers(got) == [100, 101, 102]
    finally:
        source.close()


def test_at_timestamp_starts_a_new_group_at_the_first_record_at_or_after_it(
        kafka_server: KafkaServer) -> None:
    topic = make_topic(kafka_server, 1)
    produce(kafka_server, topic, 3, 1)
    time.sleep(0.05)
    cut = time.time()
    time.sleep(0.05)
    produce(kafka_server, topic, 2, 1, start=50)
    source, _ = open_source(kafka_server, topic, f"g-{uuid.uuid4().hex}",
                            starting_position="AT_TIMESTAMP", starting_position_timestamp=cut)
    try:
        got = poll_until([source], lambda g: len(g) >= 2)
        time.sleep(0.2)
        got += source.poll(100, 0.5)
        assert numbers(got) == [50, 51]
    finally:
        source.close()


def test_paused_partition_yields_nothing_while_others_flow_and_membership_stays(
        kafka_server: KafkaServer) -> None:
    # Given two partitions and one of them paused
    topic = make_topic(kafka_server, 2)
    source, lanes = open_source(kafka_server, topic, f"g-{uuid.uuid4().hex}")
    try:
        poll_until([source], lambda g: len(lanes.assigned) == 2)
        source.pause([f"{topic}-0"])
        produce(kafka_server, topic, 20, 2)
        # When polled for longer than the session timeout (6 s)
        paused_window: list[Record] = []
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            paused_window += source.poll(100, 0.3)
        # Then only the running partition delivered and the member was never evicted
        assert set(by_lane(paused_window)) == {f"{topic}-1"}
        assert lanes.revoked == []
        source.resume([f"{topic}-0"])
        resumed = poll_until([source], lambda g: len(g) >= 10)
        assert by_lane(resumed) == {f"{topic}-0": list(range(10))}
    finally:
        source.close()


def test_in_flight_batches_settle_and_commit_before_partitions_move(
        kafka_server: KafkaServer) -> None:
    # Given member A holding unacked records of all 4 partitions
    topic, group = make_topic(kafka_server, 4), f"g-{uuid.uuid4().hex}"
    produce(kafka_server, topic, 40, 4)
    a, a_lanes = open_source(kafka_server, topic, group)
    in_flight = poll_until([a], lambda g: len(g) >= 40)
    a_lanes.on_revoke = lambda lanes: a.ack([r for r in in_flight if r.lane in lanes])
    b, b_lanes = open_source(kafka_server, topic, group)
    try:
        # When member B joins and the group rebalances
        poll_until([a, b], lambda g: bool(b_lanes.assigned) and bool(a_lanes.assigned)
                   and not (a_lanes.assigned & b_lanes.assigned), ack=True)
        # Then A settled its in-flight records before giving the lanes up: nobody sees them again
        assert a_lanes.revoked
        extra = poll_until([a, b], lambda g: True)
        time.sleep(1)
        extra += list(a.poll(100, 0.5)) + list(b.poll(100, 0.5))
        assert extra == []
        assert a_lanes.assigned | b_lanes.assigned == {f"{topic}-{p}" for p in range(4)}
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("members", [2, 3])
def test_members_split_partitions_and_survive_one_leaving_without_loss(
        kafka_server: KafkaServer, members: int) -> None:
    # Given N members of one group acking everything they receive
    topic, group = make_topic(kafka_server, 6), f"g-{uuid.uuid4().hex}"
    pairs = [open_source(kafka_server, topic, group) for _ in range(members)]
    sources = [s for s, _ in pairs]
    try:
        poll_in_threads(sources, lambda g: all(lanes.assigned for _, lanes in pairs))
        owned = [lanes.assigned for _, lanes in pairs]
        assert set().union(*owned) == {f"{topic}-{p}" for p in range(6)}
        assert sum(len(o) for o in owned) == 6  # each partition has one owner
        produce(kafka_server, topic, 60, 6)
        got = poll_in_threads(sources, lambda g: len(g) >= 30)
        # When one member leaves mid-stream (closing in its own thread, as its own process
        # would, while the others keep polling and rejoin)
        leaving = threading.Thread(target=sources[0].close)
        leaving.start()
        produce(kafka_server, topic, 60, 6, start=60)
        got += poll_in_threads(sources[1:], lambda g: len({*numbers(got), *numbers(g)}) >= 120,
                               timeout_seconds=60)
        leaving.join(30)
        # Then every record was delivered (duplicates allowed, nothing lost)
        assert set(numbers(got)) == set(range(120))
    finally:
        for s in sources:
            s.close()


def test_reconnects_and_continues_after_a_broker_restart(kafka_server: KafkaServer) -> None:
    # Given a member that has processed part of a partition
    topic, group = make_topic(kafka_server, 1), f"g-{uuid.uuid4().hex}"
    produce(kafka_server, topic, 10, 1)
    source, _ = open_source(kafka_server, topic, group)
    got = poll_until([source], lambda g: len(g) >= 10, ack=True)
    # When the broker restarts mid-stream
    kafka_server.restart()
    produce(kafka_server, topic, 10, 1, start=10)
    # Then polling continues (rebuilding the source on SourceUnavailable, like the supervisor)
    deadline = time.monotonic() + 60
    while len(set(numbers(got))) < 20:
        assert time.monotonic() < deadline, f"only {sorted(set(numbers(got)))}"
        try:
            batch = list(source.poll(100, 0.5))
            got += batch
            if batch:
                source.ack(batch)
        except SourceUnavailable:
            source.close()
            source, _ = open_source(kafka_server, topic, group)
    source.close()
    assert set(numbers(got)) == set(range(20))


def churn(kafka_server: KafkaServer, topic: str, group: str, member: KafkaSource,
          lanes: FakeLanes) -> None:
    """A second member joins the group and leaves again while `member` keeps polling in a
    thread with every lane paused, as a core whose buffer is full would: it takes nothing
    new, and what it held when its lanes were revoked is dropped."""
    b, b_lanes = open_source(kafka_server, topic, group)
    stop = threading.Event()
    handed_out: list[Record] = []
    # A full core takes nothing new, not even from lanes assigned inside a poll (librdkafka
    # goes on fetching for them within the same consume call).
    lanes.on_assign = lambda new: member.pause(sorted(new))

    def keep_polling() -> None:
        while not stop.is_set():
            member.pause(sorted(lanes.assigned))
            handed_out.extend(member.poll(500, 0.1))

    threads = [threading.Thread(target=keep_polling, daemon=True)]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 60
        while not b_lanes.assigned:
            assert time.monotonic() < deadline, "the second member never got a partition"
            b.poll(500, 0.2)
    finally:
        b.close()
    time.sleep(1)
    stop.set()
    for thread in threads:
        thread.join(10)
    lanes.on_assign = None
    member.resume(sorted(lanes.assigned))
    assert handed_out == []


def test_a_member_that_keeps_its_partitions_across_a_rebalance_redelivers_what_it_dropped(
        kafka_server: KafkaServer) -> None:
    # Given member A holding 40 records of 4 partitions, of which only the first 2 of each
    # partition are acked (the rest sit in the core's buffer, unacked)
    topic, group = make_topic(kafka_server, 4), f"g-{uuid.uuid4().hex}"
    produce(kafka_server, topic, 40, 4)
    a, a_lanes = open_source(kafka_server, topic, group)
    try:
        got = poll_until([a], lambda g: len(g) >= 40)
        a.ack([r for r in got if r.payload["offset"] < 2])
        # When B joins (A keeps some partitions and loses others) and leaves again (A gets
        # everything back), the core dropping its buffered records at each revocation
        churn(kafka_server, topic, group, a, a_lanes)
        # Then A hands out every unacked record again, from the first unacked offset
        again = poll_until([a], lambda g: len({(r.lane, r.payload["offset"]) for r in g}) >= 32)
        firsts = {lane: min(offsets) for lane, offsets in by_lane(again).items()}
        assert firsts == {f"{topic}-{p}": 2 for p in range(4)}
        assert set(numbers(again)) == {n for n in range(40) if n // 4 >= 2}
    finally:
        a.close()


def test_partitions_paused_in_librdkafka_resume_after_a_rebalance(
        kafka_server: KafkaServer) -> None:
    # Given member A whose lanes are all paused with a full holding area, so that the
    # partitions are paused in librdkafka itself
    topic, group = make_topic(kafka_server, 2), f"g-{uuid.uuid4().hex}"
    produce(kafka_server, topic, 2400, 2)
    a, a_lanes = open_source(kafka_server, topic, group)
    try:
        poll_until([a], lambda g: len(a_lanes.assigned) == 2)
        a._hold.max_records = 1000  # fills with the 2400 records
        a.pause(sorted(a_lanes.assigned))
        deadline = time.monotonic() + 30
        while len(a._hold.hard) < 2:
            assert time.monotonic() < deadline, "the holding area never filled"
            assert list(a.poll(500, 0.2)) == []
        # When the group rebalances (B joins and leaves) and the core resumes the lanes
        churn(kafka_server, topic, group, a, a_lanes)
        # Then every record is delivered: no partition stays paused inside librdkafka
        got = poll_until([a], lambda g: len(set(numbers(g))) >= 2400, timeout_seconds=60,
                         ack=True)
        assert set(numbers(got)) == set(range(2400))
    finally:
        a.close()


def test_a_partition_resumed_in_librdkafka_is_fetched_again_at_once(
        kafka_server: KafkaServer) -> None:
    # Given four lanes paused with a full holding area, so paused in librdkafka itself
    # (which drops what it had fetched ahead for the partitions)
    topic, group = make_topic(kafka_server, 4), f"g-{uuid.uuid4().hex}"
    produce(kafka_server, topic, 8000, 4)
    source, lanes = open_source(kafka_server, topic, group)
    gaps: list[float] = []
    try:
        got = poll_until([source], lambda g: len(lanes.assigned) == 4, ack=True)
        source._hold.max_records = 200
        for _ in range(5):
            source.pause(sorted(lanes.assigned))
            deadline = time.monotonic() + 30
            while len(source._hold.hard) < 4:
                assert time.monotonic() < deadline, "the holding area never filled"
                assert list(source.poll(100, 0.05)) == []
            # When the core resumes the lanes and their held records are handed out
            source.resume(sorted(lanes.assigned))
            while source._hold.hard or len(source._hold):
                got += source.poll(100, 0.05)
            # Then the next records come from a fresh fetch at once (within the broker's
            # fetch wait, 0.1 s), not when librdkafka's broker thread next wakes up on its
            # own (up to a second)
            resumed = time.monotonic()
            while not (more := list(source.poll(100, 1.0))):
                assert time.monotonic() - resumed < 5
            gaps.append(time.monotonic() - resumed)
            got += more
            source.ack(got)
        assert max(gaps) < 0.3, gaps
        for partition in range(4):  # in order, nothing skipped
            mine = [n for n in numbers(got) if n % 4 == partition]
            assert mine == list(range(partition, 4 * len(mine), 4))
    finally:
        source.close()


def test_a_record_larger_than_the_fetch_size_is_still_delivered(kafka_server: KafkaServer
                                                                 ) -> None:
    # Given a topic that takes 3 MB records, and one such record between two small ones
    # (the source fetches at most 1 MiB a response and queues at most 1 MiB ahead)
    topic = f"t-{uuid.uuid4().hex[:10]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_server.bootstrap)
    try:
        admin.create_topics([NewTopic(topic, 1, 1,
                                      topic_configs={"max.message.bytes": str(4_000_000)})])
    finally:
        admin.close()
    big = b"x" * 3_000_000
    producer = KafkaProducer(bootstrap_servers=kafka_server.bootstrap, max_request_size=4_000_000)
    try:
        for value in (b"small-1", big, b"small-2"):
            producer.send(topic, value=value, partition=0)
        producer.flush(30)
    finally:
        producer.close()
    # When the source reads the topic
    source, _ = open_source(kafka_server, topic, f"g-{uuid.uuid4().hex[:6]}")
    try:
        got = poll_until([source], lambda records: len(records) >= 3, ack=True)
    finally:
        source.close()
    # Then all three arrive, in order, the large one whole
    values = [base64.b64decode(r.payload["value"]) for r in got]
    assert values == [b"small-1", big, b"small-2"]
