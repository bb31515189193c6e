"""kafka-python private-state helpers: what they do, and that they do nothing when the
private attributes are not there."""

from __future__ import annotations

from types import SimpleNamespace

from kafka import TopicPartition

from connectors.kafka.internals import drop_parked_fetches, rejoin_pending
from tests.unit.kafka.test_kafka_source import TP0, TP1, at, polled


class Parked:
    def __init__(self) -> None:
        self.drained = False

    def drain(self) -> None:
        self.drained = True


def test_resume_drops_records_parked_while_paused_so_they_are_fetched_again() -> None:
    # Given two paused lanes, each with records kafka-python parked during the pause
    source, consumer, _ = polled(TP0, TP1, p0=[at(4)])
    parked0, parked1 = Parked(), Parked()
    consumer._fetcher = SimpleNamespace(_paused_partition_records={TP0: parked0, TP1: parked1},
                                        _paused_completed_fetches={TP0: object()})
    source.pause(["orders-0", "orders-1"])
    source._hold.max_records = 0  # held area full: the next poll pauses them in kafka-python
    source.poll(10, 0)
    assert consumer.paused == {TP0, TP1}
    # When one lane resumes (kafka-python resumes it on the next poll: nothing is held)
    source.resume(["orders-0"])
    source.poll(10, 0)
    # Then only its parked data is dropped (and drained); the other stays parked
    assert consumer.paused == {TP1}
    assert consumer._fetcher._paused_partition_records == {TP1: parked1}
    assert consumer._fetcher._paused_completed_fetches == {}
    assert parked0.drained and not parked1.drained


def test_private_helpers_do_nothing_when_kafka_python_changed_shape() -> None:
    consumer = SimpleNamespace(_fetcher=None, _coordinator=SimpleNamespace(need_rejoin=1))
    assert drop_parked_fetches(consumer, [TopicPartition("t", 0)]) == 0
    assert rejoin_pending(consumer) is False
    assert rejoin_pending(SimpleNamespace()) is False
