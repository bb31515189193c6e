"""KafkaSource against a fake consumer: commits, ownership, rebalance ordering, errors."""

from __future__ import annotations

import threading
from collections.abc import Collection
from typing import Any

import pytest
from kafka import TopicPartition
from kafka import errors as kafka_errors

from connectors.kafka.source import KafkaSource
from esm.clock import FakeClock
from esm.errors import ConfigError, SourceUnavailable
from esm.interfaces import ConnectorContext, Source
from tests.unit.kafka.test_kafka_event import Msg

TP0, TP1 = TopicPartition("orders", 0), TopicPartition("orders", 1)


class FakeCoordinator:
    def __init__(self) -> None:
        self.rejoin = False

    def need_rejoin(self) -> bool:
        return self.rejoin


class FakeConsumer:
    """Just enough of KafkaConsumer; `script` is what successive polls do."""

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.commits: list[dict[TopicPartition, int]] = []
        self.async_commits: list[dict[TopicPartition, int]] = []
        self.callbacks: list[tuple[Any, dict[TopicPartition, Any]]] = []
        self.paused: set[TopicPartition] = set()
        self.script: list[Any] = []
        self.listener: Any = None
        self._coordinator = FakeCoordinator()
        self.commit_error: Exception | None = None
        self.assigned: set[TopicPartition] = set()
        self.group_offsets: dict[TopicPartition, int | None] = {}
        self.seeks: list[tuple[TopicPartition, int]] = []

    def subscribe(self, topics: list[str], listener: Any) -> None:
        self.listener = listener

    def poll(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Msg]]:
        step = self.script.pop(0) if self.script else {}
        if callable(step):
            return step(self)  # type: ignore[no-any-return]
        return step  # type: ignore[no-any-return]

    def commit(self, offsets: dict[TopicPartition, Any], timeout_ms: int | None = None) -> None:
        if self.commit_error is not None:
            raise self.commit_error
        self.commits.append({tp: meta.offset for tp, meta in offsets.items()})

    def commit_async(self, offsets: dict[TopicPartition, Any], callback: Any) -> None:
        self.async_commits.append({tp: meta.offset for tp, meta in offsets.items()})
        self.callbacks.append((callback, offsets))

    def complete_commits(self, error: Exception | None = None) -> None:
        """The broker answers every async commit sent so far (kafka-python then runs the
        callbacks inside a later poll or commit call)."""
        for callback, offsets in self.callbacks:
            callback(offsets, error if error is not None else object())
        self.callbacks.clear()

    def pause(self, *tps: TopicPartition) -> None:
        self.paused |= set(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self.paused -= set(tps)

    def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: 10 for tp in tps}

    def committed(self, tp: TopicPartition) -> int | None:
        return self.group_offsets.get(tp, 3)

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))

    def close(self, autocommit: bool) -> None:
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


def rebalance(*tps: TopicPartition, fetched: dict[TopicPartition, list[Msg]] | None = None
              ) -> Any:
    """The group rebalances inside a poll and gives this member `tps` (eager protocol:
    everything revoked first); kafka-python keeps the state of partitions it keeps."""
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

    def factory(**kw: Any) -> FakeConsumer:
        consumers.append(FakeConsumer(**kw))
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
    assert consumer.options["enable_auto_commit"] is False
    assert consumer.options["auto_offset_reset"] == "earliest"


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


def test_pending_rejoin_settles_owned_lanes_before_the_poll_joins() -> None:
    # Given a lane with records in flight and a group that wants a rejoin
    source, consumer, lanes = make()
    consumer.script = [assign(TP0), {TP0: [Msg(4, partition=0)]}]
    source.poll(10, 0.1)
    in_flight = source.poll(10, 0.1)
    lanes.on_revoke = lambda revoked: source.ack(in_flight)
    consumer._coordinator.rejoin = True
    # When the reader polls
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

    def revoke(c: FakeConsumer) -> dict[TopicPartition, list[Msg]]:
        c.listener.on_partitions_revoked({TP0})
        return {TP0: [Msg(5, partition=0)]}  # stale fetch for a lane just lost
    consumer.script = [revoke]
    assert source.poll(10, 0.1) == []
    source.ack(records)
    source.poll(10, 0.1)
    source.close()
    assert consumer.commits == [] and consumer.async_commits == []
    assert lanes.calls[-1] == ("revoked", ["orders-0"])


def test_a_paused_lane_holds_its_records_and_hands_them_out_first_on_resume() -> None:
    # Given two owned lanes, orders-0 paused by the core (soft: kafka-python keeps fetching)
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


def test_a_full_holding_area_pauses_the_partitions_in_kafka_python() -> None:
    source, consumer, _ = polled(TP0, TP1)
    source._hold.max_records = 3
    source.pause(["orders-0"])
    consumer.script = [{TP0: [at(5), at(6)]}, {TP0: [at(7)]}]
    source.poll(10, 0.1)
    assert consumer.paused == set()  # two held: room left
    source.poll(10, 0.1)
    assert consumer.paused == {TP0}  # three held: full, so kafka-python pauses it
    # When resumed, the held records come first, once; kafka-python resumes the partition
    # only when they are all handed out (before that it would refetch what it parked)
    source.resume(["orders-0"])
    assert [r.position for r in source.poll(2, 0.1)] == ["5", "6"]
    assert consumer.paused == {TP0}
    assert [r.position for r in source.poll(10, 0.1)] == ["7"]
    assert consumer.paused == set()


def test_revoked_lanes_drop_their_held_records() -> None:
    source, consumer, _ = polled(TP0, TP1)
    source.pause(["orders-0"])
    consumer.script = [{TP0: [at(5)]}]
    source.poll(10, 0.1)
    assert len(source._hold) == 1
    source._revoke(["orders-0"])
    assert len(source._hold) == 0


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
    # When the group rebalances and gives the lane back to this member, kafka-python
    # keeping its fetch position after offset 6 (and fetching 7 in the same poll)
    consumer.script = [rebalance(TP0, fetched={TP0: [at(7)]})]
    consumer.group_offsets[TP0] = 5  # what the revocation's commit made durable
    assert source.poll(10, 0.1) == []
    # Then the lane is moved back to the group's offset: 5 and 6 are read again
    assert consumer.commits == [{TP0: 5}]
    assert consumer.seeks[-1] == (TP0, 5)
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
    consumer.commit_error = kafka_errors.RebalanceInProgressError()
    # When the lane is revoked and given back while the group still has no offset for it
    consumer.script = [rebalance(TP0)]
    source.poll(10, 0.1)
    # Then it restarts at the first record it had fetched, not after the last
    assert consumer.seeks[-1] == (TP0, 4)


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


def test_a_partition_paused_in_kafka_python_is_resumed_when_assigned_again() -> None:
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
        raise kafka_errors.KafkaConnectionError()
    consumer.script = [fail]
    with pytest.raises(SourceUnavailable):
        source.poll(10, 0.1)


def test_retriable_async_commit_failure_is_sent_again_on_the_next_poll() -> None:
    source, consumer, records = polled(TP0, p0=[at(4)])
    source.ack(records)
    source.poll(10, 0.1)
    # When the broker fails the commit with a retriable error
    consumer.complete_commits(kafka_errors.NotCoordinatorError())
    source.poll(10, 0.1)
    # Then the same offset goes out again
    assert consumer.async_commits == [{TP0: 5}, {TP0: 5}]


def test_failed_async_commit_never_moves_an_offset_back_past_a_later_one() -> None:
    # Given commit 5 in flight, then a later ack whose commit 6 goes out too
    source, consumer, records = polled(TP0, p0=[at(4), at(5)])
    source.ack(records[:1])
    source.poll(10, 0.1)
    first = consumer.callbacks.pop()
    source.ack(records[1:])
    source.poll(10, 0.1)
    # When the earlier commit fails retriably
    first[0](first[1], kafka_errors.RequestTimedOutError())
    source.poll(10, 0.1)
    # Then it is not resent: offset 6 already covers it
    assert consumer.async_commits == [{TP0: 5}, {TP0: 6}]


def test_async_commit_refused_after_a_rebalance_is_dropped() -> None:
    source, consumer, records = polled(TP0, p0=[at(4)])
    source.ack(records)
    source.poll(10, 0.1)
    consumer.complete_commits(kafka_errors.CommitFailedError())
    source.poll(10, 0.1)  # no raise: the new owner redelivers from the last commit
    assert consumer.async_commits == [{TP0: 5}]


@pytest.mark.parametrize("errors", [
    [kafka_errors.GroupAuthorizationFailedError()],  # not retriable: surfaced at once
    [kafka_errors.NotCoordinatorError()] * 11,  # retriable, but failing for too long
])
def test_persistent_async_commit_failures_surface_as_source_unavailable(
        errors: list[Exception]) -> None:
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
    consumer.commit_error = kafka_errors.KafkaTimeoutError()
    consumer._coordinator.rejoin = True
    with pytest.raises(SourceUnavailable):
        source.poll(10, 0.1)  # revoking before the rejoin: the commit must not be lost
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
    real_poll = consumer.poll

    def spy(timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Msg]]:
        timeouts.append(timeout_ms)
        return real_poll(timeout_ms, max_records)
    consumer.poll = spy  # type: ignore[method-assign]
    source.pause(["orders-0", "orders-1"])
    # When the reader polls with a timeout: nothing can arrive, so it must not block
    source.poll(10, 0.5)
    source.resume(["orders-1"])
    source.poll(10, 0.5)
    # Then the paused poll did not wait, and a poll with a running lane waits as asked
    assert timeouts == [0, 500]
