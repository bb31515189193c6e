"""KafkaSource against a fake consumer: commits, ownership, rebalance ordering, errors."""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection
from typing import Any

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    OFFSET_INVALID,
    KafkaError,
    KafkaException,
    TopicPartition,
)

from connectors.kafka.source import KafkaSource
from esm.clock import FakeClock
from esm.errors import ConfigError, SourceUnavailable
from esm.interfaces import ConnectorContext, Source
from tests.unit.kafka.fake_messages import Msg

TP0, TP1 = TopicPartition("orders", 0), TopicPartition("orders", 1)


def kafka_error(code: int, fatal: bool = False) -> KafkaException:
    return KafkaException(KafkaError(code, fatal=fatal))


class Rebalancer:
    """Plays librdkafka's rebalance callbacks (served inside consume, on the caller's
    thread) from test steps."""

    def __init__(self, consumer: FakeConsumer, callbacks: dict[str, Any]) -> None:
        self._consumer = consumer
        self._callbacks = callbacks

    def _call(self, name: str, tps: Collection[TopicPartition]) -> None:
        partitions = [TopicPartition(tp.topic, tp.partition) for tp in sorted(tps, key=str)]
        self._callbacks[name](self._consumer, partitions)

    def on_partitions_revoked(self, tps: Collection[TopicPartition]) -> None:
        self._call("on_revoke", tps)
        self._consumer.assigned -= set(tps)

    def on_partitions_lost(self, tps: Collection[TopicPartition]) -> None:
        self._call("on_lost", tps)
        self._consumer.assigned -= set(tps)

    def on_partitions_assigned(self, tps: Collection[TopicPartition]) -> None:
        self._call("on_assign", tps)


class FakeConsumer:
    """Just enough of confluent-kafka's Consumer; `script` is what successive polls find
    (a step returns {partition: messages}, or is a callable doing a rebalance first)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.commits: list[dict[TopicPartition, int]] = []
        self.async_commits: list[dict[TopicPartition, int]] = []
        self.unanswered: list[list[TopicPartition]] = []
        self.paused: set[TopicPartition] = set()
        self.positions: dict[TopicPartition, int] = {}  # after the last message consumed
        self.seeks: list[tuple[TopicPartition, int]] = []
        self.script: list[Any] = []
        self.listener: Any = None
        self.commit_error: Exception | None = None
        self.assigned: set[TopicPartition] = set()
        self.group_offsets: dict[TopicPartition, int | None] = {}
        self.starts: list[tuple[TopicPartition, int]] = []
        self.high_cached = 10
        self.closed = False
        self.unsubscribed = False
        self.rebalance_in_close = False

    def list_topics(self, timeout: float) -> object:
        return object()

    def poll(self, timeout: float) -> None:
        """Serves callbacks only (before subscribing, nothing to consume)."""

    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        self.listener = Rebalancer(self, callbacks)

    def unsubscribe(self) -> None:
        self.unsubscribed = True

    def assignment(self) -> list[TopicPartition]:
        return sorted(self.assigned, key=str)

    def consume(self, num_messages: int, timeout: float) -> list[Msg]:
        """A step is what librdkafka has queued when a poll starts (the source's first,
        non-blocking call); nothing more arrives while the source then waits. After
        unsubscribe, the next call serves the revoke of what is assigned."""
        if self.unsubscribed:
            if self.assigned:
                self.listener.on_partitions_revoked(set(self.assigned))
            return []
        if timeout > 0:
            return []
        step = self.script.pop(0) if self.script else {}
        if callable(step):
            step = step(self)
        consumed = [m for messages in step.values() for m in messages]
        for m in consumed:
            self.positions[TopicPartition(m.topic(), m.partition())] = m.offset() + 1
        return consumed

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> Any:
        sent = {TopicPartition(tp.topic, tp.partition): tp.offset for tp in offsets}
        if asynchronous:
            self.async_commits.append(sent)
            self.unanswered.append(offsets)
            return None
        if self.commit_error is not None:
            raise self.commit_error
        self.commits.append(sent)
        return offsets

    def complete_commits(self, error: KafkaError | None = None) -> None:
        """The broker answers every async commit sent so far (librdkafka then serves
        on_commit inside a later consume call)."""
        for offsets in self.unanswered:
            self.config["on_commit"](error, offsets)
        self.unanswered.clear()

    def pause(self, tps: list[TopicPartition]) -> None:
        self.paused |= set(tps)

    def resume(self, tps: list[TopicPartition]) -> None:
        self.paused -= set(tps)

    def position(self, tps: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition,
                               self.positions.get(tp, OFFSET_INVALID)) for tp in tps]

    def seek(self, tp: TopicPartition) -> None:
        self.seeks.append((TopicPartition(tp.topic, tp.partition), tp.offset))

    def get_watermark_offsets(self, tp: TopicPartition, timeout: float | None = None,
                              cached: bool = False) -> tuple[int, int]:
        return (0, self.high_cached if cached else 10)

    def committed(self, tps: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        offsets = {tp: self.group_offsets.get(tp, 3) for tp in tps}
        return [TopicPartition(tp.topic, tp.partition, OFFSET_INVALID if o is None else o)
                for tp, o in offsets.items()]

    def offsets_for_times(self, tps: list[TopicPartition], timeout: float
                          ) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, 7) for tp in tps]

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.assigned |= set(partitions)
        self.starts += [(TopicPartition(p.topic, p.partition), p.offset) for p in partitions]

    def close(self) -> None:
        """librdkafka serves a last revoke callback while leaving the group, unless the
        consumer left before (a callback served inside close can hang it for good)."""
        if self.assigned:
            self.rebalance_in_close = True
            self.listener.on_partitions_revoked(set(self.assigned))
        self.closed = True


class Lanes:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        self.on_revoke: Any = None

    def lanes_assigned(self, lanes: Collection[str]) -> None:
        self.calls.append(("assigned", sorted(lanes)))

    def lanes_revoked(self, lanes: Collection[str]) -> None:
        self.calls.append(("revoked", sorted(lanes)))
        if self.on_revoke:
            self.on_revoke(lanes)


def assign(*tps: TopicPartition, fetched: dict[TopicPartition, list[Msg]] | None = None) -> Any:
    def step(consumer: FakeConsumer) -> dict[TopicPartition, list[Msg]]:
        consumer.assigned |= set(tps)
        consumer.listener.on_partitions_assigned(set(tps))
        return fetched or {}
    return step


def revoke(*tps: TopicPartition, fetched: dict[TopicPartition, list[Msg]] | None = None
           ) -> Any:
    def step(consumer: FakeConsumer) -> dict[TopicPartition, list[Msg]]:
        consumer.listener.on_partitions_revoked(set(tps))
        return fetched or {}
    return step


def rebalance(*tps: TopicPartition, fetched: dict[TopicPartition, list[Msg]] | None = None
              ) -> Any:
    """The group rebalances inside a poll and gives this member `tps` (eager protocol:
    everything revoked first)."""
    def step(consumer: FakeConsumer) -> dict[TopicPartition, list[Msg]]:
        consumer.listener.on_partitions_revoked(set(consumer.assigned))
        consumer.assigned = set(tps)
        consumer.listener.on_partitions_assigned(set(tps))
        return fetched or {}
    return step


def make(**settings: Any) -> tuple[KafkaSource, FakeConsumer, Lanes]:
    options = {"bootstrap_servers": ("b:9092",), "topics": ("orders",),
               "consumer_group_id": "g"} | settings
    consumers: list[FakeConsumer] = []

    def factory(config: dict[str, Any]) -> FakeConsumer:
        consumers.append(FakeConsumer(config))
        return consumers[-1]

    context = ConnectorContext(mapping="m", stop=threading.Event(), clock=FakeClock())
    source = KafkaSource(KafkaSource.Settings(**options), context, consumer_factory=factory,
                         environ={})
    lanes = Lanes()
    source.open(lanes)
    return source, consumers[0], lanes


def test_is_a_stream_source_with_kafka_defaults() -> None:
    source, consumer, _ = make()
    assert isinstance(source, Source)
    assert source.traits.family == "stream"
    assert source.traits.default_batching_window_seconds == 0.5
    assert source.traits.caps_infinite_retries_with_destination
    assert source.traits.batch_info_key == "KafkaBatchInfo"
    config = consumer.config
    assert config["enable.auto.commit"] is False and config["enable.auto.offset.store"] is False
    assert config["auto.offset.reset"] == "earliest"
    assert config["isolation.level"] == "read_committed"
    assert config["security.protocol"] == "PLAINTEXT"
    assert isinstance(config["logger"], logging.Logger)  # librdkafka never prints to stderr


def at(offset: int, partition: int = 0) -> Msg:
    return Msg(offset, partition=partition)


def polled(*tps: TopicPartition, **fetch: list[Msg]) -> tuple[KafkaSource, FakeConsumer, Any]:
    """A source that owns `tps` and has polled once more (records returned)."""
    source, consumer, _ = make()
    consumer.script = [assign(*tps), {tp: fetch.get(f"p{tp.partition}", []) for tp in tps}]
    source.poll(10, 0.1)
    return source, consumer, source.poll(10, 0.1)


def test_acks_of_several_lanes_go_out_as_one_async_commit_on_the_next_poll() -> None:
    # Given records of two lanes, acked one lane at a time (two settlements in one turn)
    source, consumer, records = polled(TP0, TP1, p0=[at(4), at(5)], p1=[at(9, 1)])
    source.ack([r for r in records if r.lane == "orders-0"])
    source.ack([r for r in records if r.lane == "orders-1"])
    assert consumer.async_commits == [] and consumer.commits == []
    # When the reader polls again
    source.poll(10, 0.1)
    # Then one async commit carries last offset + 1 of both, and lag counts it once confirmed
    assert consumer.async_commits == [{TP0: 6, TP1: 10}]
    consumer.complete_commits()
    source.poll(10, 0.1)
    assert consumer.async_commits == [{TP0: 6, TP1: 10}]  # nothing new to send
    assert source.lag() == {"orders-0": 4.0, "orders-1": 0.0}


def test_nothing_is_committed_without_an_ack() -> None:
    source, consumer, _ = make()
    consumer.script = [assign(TP0), {TP0: [Msg(4, partition=0)]}]
    source.poll(10, 0.1)
    assert len(source.poll(10, 0.1)) == 1
    assert consumer.commits == []


def test_a_revocation_settles_owned_lanes_and_commits_before_they_go() -> None:
    # Given a lane with records in flight
    source, consumer, lanes = make()
    consumer.script = [assign(TP0), {TP0: [Msg(4, partition=0)]}]
    source.poll(10, 0.1)
    in_flight = source.poll(10, 0.1)
    lanes.on_revoke = lambda revoked: source.ack(in_flight)
    # When the group revokes the lane inside a poll (librdkafka's callback)
    consumer.script = [revoke(TP0)]
    source.poll(10, 0.1)
    # Then the core was asked to settle first, and its ack was committed synchronously
    assert lanes.calls[-1] == ("revoked", ["orders-0"])
    assert consumer.commits == [{TP0: 5}]
    assert consumer.async_commits == []


def test_acks_for_revoked_lanes_are_never_committed() -> None:
    source, consumer, lanes = make()
    consumer.script = [assign(TP0), {TP0: [Msg(4, partition=0)]}]
    source.poll(10, 0.1)
    records = source.poll(10, 0.1)

    consumer.script = [revoke(TP0, fetched={TP0: [Msg(5, partition=0)]})]  # stale fetch
    assert source.poll(10, 0.1) == []
    source.ack(records)
    source.poll(10, 0.1)
    source.close()
    assert consumer.commits == [] and consumer.async_commits == []
    assert lanes.calls[-1] == ("revoked", ["orders-0"])


def test_a_paused_lane_holds_its_records_and_hands_them_out_first_on_resume() -> None:
    # Given two owned lanes, orders-0 paused by the core (soft: librdkafka keeps fetching)
    source, consumer, _ = polled(TP0, TP1)
    source.pause(["orders-0", "unknown-3"])
    assert consumer.paused == set()
    # When a poll brings records for both, and later ones for the paused lane
    consumer.script = [{TP0: [at(5), at(6)], TP1: [at(7, 1)]}, {TP0: [at(8)]}]
    first = source.poll(10, 0.1)
    # Then only the running lane's records come out; the paused lane's wait here
    assert [(r.lane, r.position) for r in first] == [("orders-1", "7")]
    source.resume(["orders-0"])
    # And after resume they come first, in offset order, before what is fetched next
    second = source.poll(10, 0.1)
    assert [(r.lane, r.position) for r in second] == [
        ("orders-0", "5"), ("orders-0", "6"), ("orders-0", "8")]
    assert consumer.paused == set()


def test_a_full_holding_area_pauses_the_partitions_in_librdkafka() -> None:
    source, consumer, _ = polled(TP0, TP1)
    source._hold.max_records = 3
    source.pause(["orders-0"])
    consumer.script = [{TP0: [at(5), at(6)]}, {TP0: [at(7)]}]
    source.poll(10, 0.1)
    assert consumer.paused == set()  # two held: room left
    source.poll(10, 0.1)
    assert consumer.paused == {TP0}  # three held: full, so librdkafka pauses it
    # When resumed, the held records come first, once; librdkafka resumes the partition
    # only when they are all handed out (it then fetches on after the last of them)
    source.resume(["orders-0"])
    assert [r.position for r in source.poll(2, 0.1)] == ["5", "6"]
    assert consumer.paused == {TP0}
    assert [r.position for r in source.poll(10, 0.1)] == ["7"]
    assert consumer.paused == set()
    # And seeks it to where it stands, which wakes librdkafka's broker thread to fetch
    # (a resume alone waits up to a second for it)
    assert consumer.seeks == [(TP0, 8)]


def test_revoked_lanes_drop_their_held_records() -> None:
    source, consumer, _ = polled(TP0, TP1)
    source.pause(["orders-0"])
    consumer.script = [{TP0: [at(5)]}]
    source.poll(10, 0.1)
    assert len(source._hold) == 1
    source._members.revoke(consumer, ["orders-0"])
    assert len(source._hold) == 0


def test_held_records_released_before_a_rebalance_inside_the_poll_are_not_handed_out(
        ) -> None:
    # Given a paused lane whose records 5..6 wait in the holding area (the core has an
    # earlier batch of the lane buffered), then resumed
    source, consumer, lanes = make()
    consumer.script = [assign(TP0, TP1), {}]
    source.poll(10, 0.1)
    source.poll(10, 0.1)
    source.pause(["orders-0"])
    consumer.script = [{TP0: [at(5), at(6)]}]
    source.poll(10, 0.1)
    source.resume(["orders-0"])
    # When the next poll releases them, and the group revokes the lane and gives it back
    # inside that poll's consume() (the core drops the lane's buffered batch meanwhile)
    consumer.script = [rebalance(TP0, TP1)]
    handed = source.poll(10, 0.1)
    # Then the released records are not handed out: the lane starts again at the group's
    # offset, not after records the core dropped
    assert [r.position for r in handed] == []
    assert lanes.calls[-2:] == [("revoked", ["orders-0", "orders-1"]),
                                ("assigned", ["orders-0", "orders-1"])]
    assert (TP0, 3) in consumer.starts


def test_a_partition_kept_across_a_rebalance_reads_again_from_the_group_offset() -> None:
    # Given a lane whose records 4..6 were handed out, 4 acked and committed, 5..6 still
    # in the core's buffer
    source, consumer, lanes = make()
    consumer.script = [assign(TP0), {TP0: [at(4), at(5), at(6)]}]
    source.poll(10, 0.1)
    records = source.poll(10, 0.1)
    lanes.on_revoke = lambda revoked: source.ack(records[:1])
    consumer.group_offsets[TP0] = None
    consumer.commit_error = None
    # When the group rebalances and gives the lane back to this member (librdkafka had
    # fetched up to offset 6)
    consumer.script = [rebalance(TP0)]
    consumer.group_offsets[TP0] = 5  # what the revocation's commit made durable
    assert source.poll(10, 0.1) == []
    # Then the lane is assigned at the group's offset: 5 and 6 are read again
    assert consumer.commits == [{TP0: 5}]
    assert consumer.starts[-1] == (TP0, 5)
    assert lanes.calls[-2:] == [("revoked", ["orders-0"]), ("assigned", ["orders-0"])]


def test_without_a_group_offset_a_kept_partition_restarts_at_its_first_unfinished_record(
        ) -> None:
    # Given a never-committed lane whose first fetch was 4..6, none acked, and a commit
    # that fails (say the coordinator moved)
    source, consumer, lanes = make()
    consumer.group_offsets[TP0] = None
    consumer.script = [assign(TP0), {TP0: [at(4), at(5), at(6)]}]
    source.poll(10, 0.1)
    assert len(source.poll(10, 0.1)) == 3
    consumer.commit_error = kafka_error(KafkaError.REBALANCE_IN_PROGRESS)
    # When the lane is revoked and given back while the group still has no offset for it
    consumer.script = [rebalance(TP0)]
    source.poll(10, 0.1)
    # Then it restarts at the first record it had fetched, not after the last
    assert consumer.starts[-1] == (TP0, 4)


def test_a_never_committed_partition_is_pinned_at_its_first_fetched_offset() -> None:
    # Given a group without offsets for the partition (LATEST put it at 40)
    source, consumer, _ = make(starting_position="LATEST")
    consumer.group_offsets[TP0] = None
    consumer.script = [assign(TP0), {TP0: [at(40), at(41)]}, {TP0: [at(42)]}]
    source.poll(10, 0.1)
    # When its first records are fetched (and not acked yet)
    source.poll(10, 0.1)
    source.poll(10, 0.1)
    # Then the group's position is committed at the first of them, once: another member
    # taking the partition now starts there, not at the log end
    assert consumer.async_commits == [{TP0: 40}]


def test_a_partition_paused_in_librdkafka_is_resumed_when_assigned_again() -> None:
    source, consumer, _ = polled(TP0, TP1)
    source._hold.max_records = 1
    source.pause(["orders-0"])
    consumer.script = [{TP0: [at(5)]}]
    source.poll(10, 0.1)
    assert consumer.paused == {TP0}
    consumer.script = [rebalance(TP0, TP1)]
    source.poll(10, 0.1)
    assert consumer.paused == set()


def test_broker_errors_become_source_unavailable() -> None:
    source, consumer, _ = make()

    def fail(c: FakeConsumer) -> dict[TopicPartition, list[Msg]]:
        raise kafka_error(KafkaError._TRANSPORT)
    consumer.script = [fail]
    with pytest.raises(SourceUnavailable):
        source.poll(10, 0.1)


def test_retriable_async_commit_failure_is_sent_again_on_the_next_poll() -> None:
    source, consumer, records = polled(TP0, p0=[at(4)])
    source.ack(records)
    source.poll(10, 0.1)
    # When the broker fails the commit with a retriable error
    consumer.complete_commits(KafkaError(KafkaError.NOT_COORDINATOR))
    source.poll(10, 0.1)
    # Then the same offset goes out again
    assert consumer.async_commits == [{TP0: 5}, {TP0: 5}]


def test_failed_async_commit_never_moves_an_offset_back_past_a_later_one() -> None:
    # Given commit 5 in flight, then a later ack whose commit 6 goes out too
    source, consumer, records = polled(TP0, p0=[at(4), at(5)])
    source.ack(records[:1])
    source.poll(10, 0.1)
    first = consumer.unanswered.pop()
    source.ack(records[1:])
    source.poll(10, 0.1)
    # When the earlier commit fails retriably (answered after the later one went out)
    consumer.config["on_commit"](KafkaError(KafkaError.REQUEST_TIMED_OUT), first)
    source.poll(10, 0.1)
    # Then it is not resent: offset 6 already covers it
    assert consumer.async_commits == [{TP0: 5}, {TP0: 6}]


def test_async_commit_refused_after_a_rebalance_is_dropped() -> None:
    source, consumer, records = polled(TP0, p0=[at(4)])
    source.ack(records)
    source.poll(10, 0.1)
    consumer.complete_commits(KafkaError(KafkaError._ASSIGNMENT_LOST))
    source.poll(10, 0.1)  # no raise: the new owner redelivers from the last commit
    assert consumer.async_commits == [{TP0: 5}]


@pytest.mark.parametrize("errors", [
    [KafkaError(KafkaError.GROUP_AUTHORIZATION_FAILED)],  # not retriable: surfaced at once
    [KafkaError(KafkaError.NOT_COORDINATOR)] * 11,  # retriable, but failing for too long
])
def test_persistent_async_commit_failures_surface_as_source_unavailable(
        errors: list[KafkaError]) -> None:
    source, consumer, records = polled(TP0, p0=[at(4)])
    source.ack(records)
    source.poll(10, 0.1)
    with pytest.raises(SourceUnavailable, match="commit failed"):
        for error in errors:
            consumer.complete_commits(error)
            source.poll(10, 0.1)
    assert len(consumer.async_commits) == len(errors)


def test_close_commits_acked_offsets_the_broker_has_not_confirmed() -> None:
    # Given an async commit still unanswered and a later ack not yet sent
    source, consumer, records = polled(TP0, TP1, p0=[at(4)], p1=[at(7, 1)])
    source.ack(records[:1])
    source.poll(10, 0.1)
    source.ack(records[1:])
    # When the source closes
    source.close()
    # Then both partitions' latest acked offsets are committed synchronously first
    assert consumer.commits == [{TP0: 5, TP1: 8}]
    assert consumer.closed


def test_close_survives_a_failed_final_commit_and_revoke_surfaces_broker_errors() -> None:
    source, consumer, records = polled(TP0, p0=[at(4)])
    source.ack(records)
    consumer.commit_error = kafka_error(KafkaError._TIMED_OUT)
    consumer.script = [revoke(TP0)]
    with pytest.raises(SourceUnavailable, match="commit failed"):
        source.poll(10, 0.1)  # the revocation's commit failed: the records must come again
    source.close()  # logged, not raised: the records come again
    assert consumer.closed


def test_missing_secret_is_a_config_error_at_construction() -> None:
    context = ConnectorContext(mapping="m", stop=threading.Event(), clock=FakeClock())
    settings = KafkaSource.Settings(bootstrap_servers=("b:1",), topics=("t",),
                                    consumer_group_id="g", auth="BASIC_AUTH", username="u",
                                    password_env="MISSING")
    with pytest.raises(ConfigError, match="'MISSING' is not set"):
        KafkaSource(settings, context, environ={})


def test_poll_returns_at_once_when_every_owned_lane_is_paused() -> None:
    # Given a source owning two lanes, both paused (each has a batch waiting in the core)
    source, consumer, _ = polled(TP0, TP1)
    timeouts: list[int] = []
    real_poll = consumer.consume

    def spy(num_messages: int, timeout: float) -> list[Msg]:
        timeouts.append(timeout)
        return real_poll(num_messages, timeout)
    consumer.consume = spy  # type: ignore[method-assign]
    source.pause(["orders-0", "orders-1"])
    # When the reader polls with a timeout: nothing can arrive, so it must not block
    source.poll(10, 0.5)
    source.resume(["orders-1"])
    source.poll(10, 0.5)
    # Then the paused poll did not wait, and a poll with a running lane, finding nothing
    # queued, waits as asked (for a first message only)
    assert timeouts == [0, 0, 0.5]


def test_close_commits_then_leaves_without_calling_the_core_from_its_revoke_callback(
        ) -> None:
    # Given an owned lane with an acked record
    source, consumer, records = polled(TP0, p0=[at(4)])
    lanes_before = list(source._members.listener.calls)  # type: ignore[union-attr]
    source.ack(records)
    # When the source closes (librdkafka serves a last revoke callback inside close)
    source.close()
    # Then the ack was committed once, and the core heard nothing from the callback
    assert consumer.commits == [{TP0: 5}] and consumer.closed
    assert source._members.listener.calls == lanes_before  # type: ignore[union-attr]


def test_close_leaves_the_group_before_closing_so_close_serves_no_rebalance() -> None:
    # Given an owned lane
    source, consumer, records = polled(TP0, p0=[at(4)])
    lanes_before = list(source._members.listener.calls)  # type: ignore[union-attr]
    # When the source closes
    source.close()
    # Then it unsubscribed and served the revoke itself, so that librdkafka's close()
    # had no rebalance left to serve (assigning inside close() can hang librdkafka, with
    # confluent-kafka holding the GIL: the whole daemon froze), and the core heard nothing
    assert consumer.unsubscribed and not consumer.assigned
    assert consumer.closed and not consumer.rebalance_in_close
    assert source._members.listener.calls == lanes_before  # type: ignore[union-attr]


def test_lost_partitions_are_forgotten_without_a_commit() -> None:
    source, consumer, lanes = make()
    consumer.script = [assign(TP0), {TP0: [at(4)]}]
    source.poll(10, 0.1)
    records = source.poll(10, 0.1)
    lanes.on_revoke = lambda revoked: source.ack(records)  # settles, but too late to commit
    consumer.script = [lambda c: (c.listener.on_partitions_lost({TP0}), {})[1]]
    source.poll(10, 0.1)
    source.poll(10, 0.1)
    assert lanes.calls[-1] == ("revoked", ["orders-0"])
    assert consumer.commits == [] and consumer.async_commits == []
    # And what the core acked while settling is where the lane restarts if given back
    consumer.script = [assign(TP0)]
    source.poll(10, 0.1)
    assert consumer.starts[-1] == (TP0, 5)


class ErrorMessage(Msg):
    def __init__(self, code: int, fatal: bool = False) -> None:
        super().__init__(0)
        self._error = KafkaError(code, fatal=fatal)

    def error(self) -> KafkaError:  # type: ignore[override]
        return self._error


def test_a_message_carrying_an_error_is_no_record_and_fatal_ones_stop_the_source() -> None:
    source, consumer, _ = polled(TP0)
    consumer.script = [{TP0: [ErrorMessage(KafkaError.UNKNOWN_TOPIC_OR_PART), at(4)]}]
    assert [r.position for r in source.poll(10, 0.1)] == ["4"]  # logged, skipped
    for code, fatal in [(KafkaError.TOPIC_AUTHORIZATION_FAILED, False),
                        (KafkaError._FATAL, True)]:
        consumer.script = [{TP0: [ErrorMessage(code, fatal)]}]
        with pytest.raises(SourceUnavailable):
            source.poll(10, 0.1)


def test_a_failing_rebalance_callback_surfaces_from_poll() -> None:
    source, consumer, _ = make()
    consumer.group_offsets = None  # type: ignore[assignment]  # committed() now raises
    consumer.script = [assign(TP0)]
    with pytest.raises(SourceUnavailable, match="rebalance"):
        source.poll(10, 0.1)


@pytest.mark.parametrize(("position", "start"), [
    ("TRIM_HORIZON", OFFSET_BEGINNING), ("LATEST", OFFSET_END), ("AT_TIMESTAMP", 7)])
def test_a_partition_the_group_never_committed_starts_at_the_starting_position(
        position: str, start: int) -> None:
    stamp = {"starting_position_timestamp": 1.0} if position == "AT_TIMESTAMP" else {}
    source, consumer, _ = make(starting_position=position, **stamp)
    consumer.group_offsets[TP0] = None
    consumer.script = [assign(TP0)]
    source.poll(10, 0.1)
    assert consumer.starts == [(TP0, start)]


def test_lag_uses_the_cached_high_watermark_and_asks_when_it_is_unknown() -> None:
    source, consumer, records = polled(TP0, p0=[at(4)])
    source.ack(records)
    consumer.high_cached = 8
    assert source.lag() == {"orders-0": 3.0}
    consumer.high_cached = OFFSET_INVALID  # nothing fetched yet: one request
    assert source.lag() == {"orders-0": 5.0}


def test_a_lost_partition_given_back_restarts_after_what_was_acked_here() -> None:
    # Given a lane whose records 4..6 were acked here, the commit never confirmed
    source, consumer, lanes = make()
    consumer.script = [assign(TP0), {TP0: [at(4), at(5), at(6)]}]
    source.poll(10, 0.1)
    source.ack(source.poll(10, 0.1))
    source.poll(10, 0.1)  # the async commit of 7 goes out, and never answers
    # When the assignment is lost (the session expired in a broker outage) and given back,
    # the group still at offset 3
    consumer.script = [lambda c: (c.listener.on_partitions_lost({TP0}), {})[1], assign(TP0)]
    source.poll(10, 0.1)
    source.poll(10, 0.1)
    # Then the lane restarts at 7 (4..6 succeeded already), and 7 is committed again
    assert consumer.starts[-1] == (TP0, 7)
    assert consumer.async_commits[-1] == {TP0: 7}
    assert lanes.calls[-2:] == [("revoked", ["orders-0"]), ("assigned", ["orders-0"])]


def test_poll_never_waits_for_a_full_batch_only_for_a_first_message() -> None:
    # librdkafka's consume(n, timeout) waits until n messages or the timeout: asked for a
    # full room it would sit out the timeout whenever fewer are queued
    source, consumer, _ = polled(TP0)
    calls: list[tuple[int, float]] = []
    arriving = [at(5)]

    def spy(num_messages: int, timeout: float) -> list[Msg]:
        calls.append((num_messages, timeout))
        if timeout > 0:
            return [arriving.pop()] if arriving else []
        return [at(4)] if len(calls) == 1 else [at(6)] if len(calls) == 4 else []
    consumer.consume = spy  # type: ignore[method-assign]
    # When a message is queued: taken at once, without a blocking call
    assert [r.position for r in source.poll(10, 0.5)] == ["4"]
    assert calls == [(10, 0)]
    # When nothing is queued: wait for one message, then take what else is queued
    assert [r.position for r in source.poll(10, 0.5)] == ["5", "6"]
    assert calls[1:] == [(10, 0), (1, 0.5), (9, 0)]
