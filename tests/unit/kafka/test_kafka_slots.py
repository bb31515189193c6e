"""Kafka with parallelization_factor > 1 at the reader, over a fake consumer: a rebalance
while key slots are busy commits only the partition's finished prefix, and the next owner
(or this one, assigned the partition again) reads on from the first unfinished record."""

from __future__ import annotations

import base64
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from confluent_kafka import TopicPartition

from connectors.kafka.source import KafkaSource
from esm.interfaces import ConnectorContext
from esm.pipeline.lane_buffer import key_slot
from esm.records import Event, InvokeResult, Returned
from tests.unit.kafka.fake_messages import Msg
from tests.unit.kafka.test_kafka_source import FakeConsumer, assign
from tests.unit.runtime_fakes import Rig, mapping_config

TP0 = TopicPartition("orders", 0)


class SlowKeyTarget:
    """Journals offsets per invoke; batches holding `slow_offset` wait for `gate`."""

    def __init__(self, slow_offset: int) -> None:
        self.slow_offset = slow_offset
        self.gate = threading.Event()
        self.started = threading.Event()
        self.offsets: list[int] = []
        self._lock = threading.Lock()

    def invoke(self, event: Event, timeout_seconds: float) -> InvokeResult:
        offsets = [r["offset"] for rs in json.loads(event.body)["records"].values() for r in rs]
        if self.slow_offset in offsets:
            self.started.set()
            self.gate.wait(10)
        with self._lock:
            self.offsets.extend(offsets)
        return Returned(None)

    def close(self) -> None:
        pass


def kafka_rig(target: SlowKeyTarget, pool: Any = None) -> tuple[Rig, list[FakeConsumer]]:
    consumers: list[FakeConsumer] = []

    def factory(config: dict[str, Any]) -> FakeConsumer:
        consumers.append(FakeConsumer(config))
        return consumers[-1]

    def build(context: ConnectorContext) -> KafkaSource:
        settings = KafkaSource.Settings(bootstrap_servers=("b:9092",), topics=("orders",),
                                        consumer_group_id="g")
        return KafkaSource(settings, context, consumer_factory=factory, environ={})

    mapping = mapping_config(parallelization_factor=4, batch_size=2,
                             maximum_batching_window_in_seconds=0.0)
    return Rig(mapping, target, max_in_flight=8, source_factory=build, pool=pool), consumers


def slot(key: bytes) -> int:
    return key_slot(base64.b64encode(key).decode(), 4)


def messages() -> list[Msg]:
    """Offsets 3-14 (the group committed 3): offset 3 has key `slow`, the others keys of
    other slots (so only offset 3's slot is held)."""
    others = [k for k in (f"c{i}".encode() for i in range(50)) if slot(k) != slot(b"slow")]
    return [Msg(n, partition=0, key=b"slow" if n == 3 else others[n % 5])
            for n in range(3, 15)]


def test_a_rebalance_while_slots_are_busy_commits_only_the_finished_prefix() -> None:
    # Given a partition whose first record's slot is still running while others finish
    target = SlowKeyTarget(slow_offset=3)
    pool = ThreadPoolExecutor(8)
    rig, [consumer] = kafka_rig(target, pool)
    consumer.script = [assign(TP0), {TP0: messages()}]
    for _ in range(3):
        rig.reader.step()
    assert target.started.wait(5)
    deadline = time.monotonic() + 5
    while len(target.offsets) < 11 and time.monotonic() < deadline:
        rig.reader.in_flight.apply(0.05)
        rig.reader.step()
    assert sorted(target.offsets) == list(range(4, 15))  # every other key ran meanwhile
    assert all(c[TP0] <= 3 for c in [*consumer.async_commits, *consumer.commits])
    # When the group rebalances away the partition; the slow slot finishes during the drain
    threading.Timer(0.3, target.gate.set).start()
    consumer.script = [lambda c: (c.listener.on_partitions_revoked({TP0}), {})[1]]
    rig.reader.step()
    # Then nothing was committed past offset 3 before the slow record finished, and the
    # revocation's synchronous commit covers everything finished: the whole prefix
    everything = [*consumer.async_commits, *consumer.commits]
    assert sorted(target.offsets) == list(range(3, 15))
    assert consumer.commits and consumer.commits[-1] == {TP0: 15}
    assert all(c[TP0] == 15 or c[TP0] <= 3 for c in everything)
    pool.shutdown(wait=True)


def test_slots_unfinished_at_a_rebalance_are_read_again_from_the_first_unfinished_offset(
) -> None:
    # Given a partition whose first record's slot never finishes before a rebalance
    target = SlowKeyTarget(slow_offset=3)
    rig, [consumer] = kafka_rig(target)  # batches run only when the test says
    consumer.script = [assign(TP0), {TP0: messages()}]
    rig.reader.step()
    rig.reader.step()
    pending, rig.executor.pending = rig.executor.pending, []
    for fn, args in pending:
        if 3 in [int(r.position) for r in args[1].records]:
            rig.executor.pending.append((fn, args))
        else:
            fn(*args)
    rig.reader.in_flight.apply(0)
    # When the partition is revoked (the stuck slot outlives the drain) and assigned again
    consumer.group_offsets[TP0] = None  # nothing committed: offset 3 never finished
    consumer.script = [lambda c: (c.listener.on_partitions_revoked({TP0}), {})[1],
                       assign(TP0)]
    rig.reader.step()
    rig.reader.step()
    # Then no commit passed offset 3, and the partition restarts at offset 3
    assert all(c[TP0] <= 3 for c in [*consumer.async_commits, *consumer.commits])
    assert consumer.starts[-1] == (TP0, 3)
