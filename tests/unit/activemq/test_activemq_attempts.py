"""ActiveMQSource's count of failed deliveries, with a fake link: the broker's
delivery-count rises on every return, a lost connection's included, so `max_deliveries`
counts what failed at the target instead (a crash loop is still stopped)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from proton import Message

from connectors.activemq.link import QueueLink
from connectors.activemq.settings import ActiveMQSettings
from connectors.activemq.source import ActiveMQSource
from esm.clock import SystemClock
from esm.interfaces import ConnectorContext
from esm.records import Record


class FakeLink:
    def __init__(self) -> None:
        self.arriving: list[tuple[Message, Any]] = []

    def buffered(self) -> int:
        return len(self.arriving)

    def pump(self, seconds: float, until_message: bool = True) -> None:
        pass

    def take(self, limit: int) -> list[tuple[Message, Any]]:
        taken, self.arriving = self.arriving[:limit], self.arriving[limit:]
        return taken


class Listener:
    def lanes_assigned(self, lanes: Any) -> None:
        pass

    def lanes_revoked(self, lanes: Any) -> None:
        pass


@pytest.fixture
def settled(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for outcome in ("accept", "failed", "reject"):
        monkeypatch.setattr(QueueLink, outcome, staticmethod(
            lambda delivery, outcome=outcome: out.append((outcome, delivery))))
    return out


def opened(monkeypatch: pytest.MonkeyPatch, stop: threading.Event | None = None,
           ) -> tuple[ActiveMQSource, FakeLink]:
    link = FakeLink()
    monkeypatch.setattr(ActiveMQSource, "_connect", lambda self: link)
    settings = ActiveMQSettings(queue="q", maximum_redeliveries=2, redelivery_delay_seconds=0)
    source = ActiveMQSource(settings, ConnectorContext("m", stop or threading.Event(),
                                                       SystemClock()))
    source.open(Listener())
    return source, link


def deliver(source: ActiveMQSource, link: FakeLink, broker_count: int,
            message_id: str | None = "ID:m1", body: str = "same") -> Record:
    """m1 again, the broker's delivery-count at `broker_count` (returns of any kind)."""
    message = Message(body=body, id=message_id)
    message.delivery_count = broker_count
    link.arriving.append((message, f"delivery-{broker_count}"))
    [record] = source.poll(10, 0.0)
    return record


def test_returns_by_lost_connections_do_not_count_as_failed_deliveries(
        monkeypatch: pytest.MonkeyPatch, settled: list[tuple[str, Any]]) -> None:
    # three daemons killed while holding m1 made the broker's count 3: with
    # maximum_redeliveries 2 it was rejected to the DLQ without one failure at the target
    source, link = opened(monkeypatch)
    assert deliver(source, link, 3).delivery_count == 1
    source.release([deliver(source, link, 4)], 0.2)
    assert deliver(source, link, 5).delivery_count == 2
    assert settled == [("failed", "delivery-4")]


def test_an_accepted_message_is_forgotten_and_a_stopping_hand_back_is_no_failure(
        monkeypatch: pytest.MonkeyPatch, settled: list[tuple[str, Any]]) -> None:
    stop = threading.Event()
    source, link = opened(monkeypatch, stop)
    source.release([deliver(source, link, 0)], 0.2)
    source.ack([deliver(source, link, 1)])
    assert deliver(source, link, 1).delivery_count == 1  # the count went with the accept
    record = deliver(source, link, 1)
    stop.set()  # a stopping mapping hands back what it never invoked
    source.release([record], 0.0)
    stop.clear()
    assert deliver(source, link, 2).delivery_count == 1


def test_a_message_returned_in_a_crash_loop_is_dead_lettered_at_last(
        monkeypatch: pytest.MonkeyPatch, settled: list[tuple[str, Any]]) -> None:
    # one that takes the daemon down every time never fails at the target: past ten times
    # the limit (3 deliveries) the broker's count decides
    source, link = opened(monkeypatch)
    assert deliver(source, link, 29).delivery_count == 1
    assert deliver(source, link, 30).delivery_count == 31


def test_a_message_without_an_id_counts_its_failures_by_its_body(
        monkeypatch: pytest.MonkeyPatch, settled: list[tuple[str, Any]]) -> None:
    # its ID is made up at each delivery, so counting by it would never reach the limit:
    # a failing message would come back until the crash-loop bound (30 deliveries here)
    source, link = opened(monkeypatch)
    first = deliver(source, link, 0, message_id=None)
    source.release([first], 0.2)
    second = deliver(source, link, 1, message_id=None)
    assert second.item_id != first.item_id and second.delivery_count == 2
    assert deliver(source, link, 1, message_id=None, body="other").delivery_count == 1
    source.release([second], 0.2)
    third = deliver(source, link, 2, message_id=None)
    assert third.delivery_count == 3
    source.release([third], 0.2)  # past maximum_redeliveries (2): the broker's DLQ
    assert settled[-1] == ("reject", "delivery-2")
