"""KafkaSource against a fake consumer: commits, ownership, rebalance ordering, errors."""

from __future__ import annotations

import threading
from collections.abc import Collection
from typing import Any

import pytest
from kafka import TopicPartition
from kafka import errors as kafka_errors

from connectors.sources.kafka import KafkaSource
from esm.clock import FakeClock
from esm.errors import ConfigError, SourceUnavailable
from esm.interfaces import ConnectorContext, Source
from tests.unit.test_kafka_event import Msg

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
        self.paused: set[TopicPartition] = set()
        self.script: list[Any] = []
        self.listener: Any = None
        self._coordinator = FakeCoordinator()
        self.commit_error: Exception | None = None

    def subscribe(self, topics: list[str], listener: Any) -> None:
        self.listener = listener

    def poll(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Msg]]:
        step = self.script.pop(0) if self.script else {}
        if callable(step):
            return step(self)  # type: ignore[no-any-return]
        return step  # type: ignore[no-any-return]

    def commit(self, offsets: dict[TopicPartition, Any]) -> None:
        if self.commit_error is not None:
            raise self.commit_error
        self.commits.append({tp: meta.offset for tp, meta in offsets.items()})

    def pause(self, *tps: TopicPartition) -> None:
        self.paused |= set(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self.paused -= set(tps)

    def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: 10 for tp in tps}

    def committed(self, tp: TopicPartition) -> int | None:
        return 3

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


def assign(*tps: TopicPartition) -> Any:
    def step(consumer: FakeConsumer) -> dict[TopicPartition, list[Msg]]:
        consumer.listener.on_partitions_assigned(set(tps))
        return {}
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


def test_ack_commits_the_last_offset_plus_one_per_partition() -> None:
    source, consumer, lanes = make()
    consumer.script = [assign(TP0, TP1), {TP0: [Msg(4, partition=0), Msg(5, partition=0)],
                                          TP1: [Msg(9, partition=1)]}]
    source.poll(10, 0.1)
    records = source.poll(10, 0.1)
    assert lanes.calls == [("assigned", ["orders-0", "orders-1"])]
    source.ack(records)
    assert consumer.commits == [{TP0: 6, TP1: 10}]
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
    # Then the core was asked to settle first, and its ack was committed
    assert lanes.calls[-1] == ("revoked", ["orders-0"])
    assert consumer.commits == [{TP0: 5}]


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
    assert consumer.commits == []
    assert lanes.calls[-1] == ("revoked", ["orders-0"])


def test_pause_and_resume_map_lanes_to_owned_partitions() -> None:
    source, consumer, _ = make()
    consumer.script = [assign(TP0, TP1)]
    source.poll(10, 0.1)
    source.pause(["orders-0", "unknown-3"])
    assert consumer.paused == {TP0}
    source.resume(["orders-0"])
    assert consumer.paused == set()


def test_broker_errors_become_source_unavailable() -> None:
    source, consumer, _ = make()

    def fail(c: FakeConsumer) -> dict[TopicPartition, list[Msg]]:
        raise kafka_errors.KafkaConnectionError()
    consumer.script = [fail]
    with pytest.raises(SourceUnavailable):
        source.poll(10, 0.1)


def test_commit_refused_after_rebalance_is_dropped_but_transient_errors_raise() -> None:
    source, consumer, _ = make()
    consumer.script = [assign(TP0), {TP0: [Msg(4, partition=0)]}]
    source.poll(10, 0.1)
    records = source.poll(10, 0.1)
    consumer.commit_error = kafka_errors.CommitFailedError()
    source.ack(records)  # no raise: the new owner redelivers
    consumer.commit_error = kafka_errors.KafkaTimeoutError()
    with pytest.raises(SourceUnavailable):
        source.ack(records)


def test_missing_secret_is_a_config_error_at_construction() -> None:
    context = ConnectorContext(mapping="m", stop=threading.Event(), clock=FakeClock())
    settings = KafkaSource.Settings(bootstrap_servers=("b:1",), topics=("t",),
                                    consumer_group_id="g", auth="BASIC_AUTH", username="u",
                                    password_env="MISSING")
    with pytest.raises(ConfigError, match="MISSING is not set"):
        KafkaSource(settings, context, environ={})
