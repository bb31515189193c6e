"""The visibility keeper: held messages stay hidden until esm lets go (fake SQS, fake clock)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from connectors.sqs.source import SqsSettings, SqsSource
from connectors.sqs.visibility import VisibilityKeeper
from esm.clock import FakeClock, SystemClock
from esm.interfaces import ConnectorContext
from tests.unit.sqs.test_sqs_source import FakeSqs, Listener, msg, poll_all

URL = "https://sqs.us-east-2.amazonaws.com/123456789012/q"


class VisibilityCalls:
    """ChangeMessageVisibilityBatch answers: refusals by handle, failures, and a hook that
    runs while a call is on the wire."""

    def __init__(self) -> None:
        self.calls: list[list[tuple[str, int]]] = []
        self.refuse: dict[str, str] = {}
        self.fail_next = False
        self.during_call: Callable[[], None] | None = None

    def change_message_visibility_batch(self, **kw: Any) -> dict[str, Any]:
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("endpoint unreachable")
        self.calls.append([(e["ReceiptHandle"], e["VisibilityTimeout"]) for e in kw["Entries"]])
        if self.during_call is not None:
            hook, self.during_call = self.during_call, None
            hook()
        failed = [{"Id": e["Id"], "SenderFault": True, "Code": self.refuse[e["ReceiptHandle"]]}
                  for e in kw["Entries"] if e["ReceiptHandle"] in self.refuse]
        ok = [{"Id": e["Id"]} for e in kw["Entries"] if e["ReceiptHandle"] not in self.refuse]
        return {"Successful": ok, "Failed": failed}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def keeper_for(client: Any, clock: FakeClock, visibility: int = 30) -> VisibilityKeeper:
    return VisibilityKeeper(client, URL, visibility, clock)


def test_messages_held_half_a_period_are_extended_to_the_full_timeout(clock: FakeClock) -> None:
    # Given two messages received 16 s apart under a 30 s visibility timeout
    sqs = VisibilityCalls()
    keeper = keeper_for(sqs, clock)
    keeper.hold(["old"], clock.monotonic())
    clock.advance(16)
    keeper.hold(["new"], clock.monotonic())
    # When the keeper looks / Then only the one held past half its period is extended
    assert keeper.extend_due() == 1
    assert sqs.calls == [[("old", 30)]]
    # And its period restarts: nothing is due until 15 s later, then both are
    assert keeper.extend_due() == 0
    clock.advance(15)
    assert keeper.extend_due() == 2
    assert sorted(sqs.calls[-1]) == [("new", 30), ("old", 30)]


def test_acked_or_released_messages_are_no_longer_extended(clock: FakeClock) -> None:
    sqs = VisibilityCalls()
    keeper = keeper_for(sqs, clock)
    keeper.hold(["acked", "released", "kept"], clock.monotonic())
    keeper.let_go(["acked"])
    keeper.released(["released"], 5.0)
    clock.advance(20)
    assert keeper.extend_due() == 1
    assert sqs.calls == [[("kept", 30)]]
    assert keeper.held() == 1


def test_extensions_go_ten_entries_a_call(clock: FakeClock) -> None:
    sqs = VisibilityCalls()
    keeper = keeper_for(sqs, clock)
    keeper.hold([f"h{i}" for i in range(23)], clock.monotonic())
    clock.advance(15)
    assert keeper.extend_due() == 23
    assert [len(call) for call in sqs.calls] == [10, 10, 3]


def test_a_release_racing_an_extension_gets_its_delay_back_after_the_call(
        clock: FakeClock) -> None:
    # Given a message whose extension is on the wire when the reader releases it with a
    # 2 s retry delay (its own ChangeMessageVisibility may land before the extension)
    sqs = VisibilityCalls()
    keeper = keeper_for(sqs, clock)
    keeper.hold(["h1"], clock.monotonic())
    clock.advance(15)
    sqs.during_call = lambda: keeper.released(["h1"], 2.0)
    # When the keeper's call returns
    keeper.extend_due()
    # Then the release's delay is written again, last, and the message is no longer held
    assert sqs.calls == [[("h1", 30)], [("h1", 2)]]
    assert keeper.held() == 0


def test_a_failed_call_keeps_the_messages_due_and_warns(
        clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    sqs = VisibilityCalls()
    keeper = keeper_for(sqs, clock)
    keeper.hold(["h1", "h2"], clock.monotonic())
    clock.advance(15)
    sqs.fail_next = True
    with caplog.at_level(logging.WARNING):
        assert keeper.extend_due() == 0
    assert "could not extend the visibility of 2 held message(s)" in caplog.text
    assert keeper.extend_due() == 2  # due again at once, not a period later


def test_a_refused_message_still_held_is_reported_and_forgotten(
        clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    # Given two held messages, SQS refusing one (another receive took it) and the other
    # acked while the call was on the wire (its refusal is expected)
    sqs = VisibilityCalls()
    keeper = keeper_for(sqs, clock)
    keeper.hold(["taken", "acked", "fine"], clock.monotonic())
    clock.advance(15)
    sqs.refuse = {"taken": "ReceiptHandleIsInvalid", "acked": "ReceiptHandleIsInvalid"}
    sqs.during_call = lambda: keeper.let_go(["acked"])
    with caplog.at_level(logging.WARNING):
        assert keeper.extend_due() == 1
    # Then one refusal is reported, and only the extended message is still kept
    assert "refused to extend the visibility of 1 held message(s) (ReceiptHandleIsInvalid)" \
        in caplog.text
    assert keeper.held() == 1


def test_warnings_are_rate_limited(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    sqs = VisibilityCalls()
    keeper = keeper_for(sqs, clock)
    keeper.hold(["h1"], clock.monotonic())
    clock.advance(15)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            sqs.fail_next = True
            keeper.extend_due()
        clock.advance(30)
        sqs.fail_next = True
        keeper.extend_due()
    assert caplog.text.count("could not extend") == 2


def test_the_keeper_thread_extends_on_its_own_and_stops_on_close() -> None:
    # Given a 1 s timeout, so the keeper looks every 0.25 s (real time, real clock)
    sqs = VisibilityCalls()
    keeper = VisibilityKeeper(sqs, URL, 1, SystemClock())
    extended = threading.Event()
    sqs.during_call = extended.set
    keeper.hold(["h1"], SystemClock().monotonic())
    keeper.start("test-keeper")
    # When half a period passes / Then the thread extended the message, and close() stops it
    assert extended.wait(3.0)
    keeper.close()
    calls = len(sqs.calls)
    threading.Event().wait(1.2)  # two more periods: a live keeper would have extended
    assert len(sqs.calls) == calls


# ---- wiring in the source ---------------------------------------------------------------


def source_with(fake: FakeSqs, clock: FakeClock, **settings: Any) -> SqsSource:
    context = ConnectorContext("m", threading.Event(), clock)
    source = SqsSource(SqsSettings(queue_url=URL, region="us-east-2", pollers=1, **settings),
                       context, client=fake)
    source.open(Listener())
    return source


def settles_to(fake: FakeSqs, want: set[tuple[str, int]], seconds: float = 3.0) -> bool:
    """Whether the keeper thread (one look a second at a 30 s timeout) made these calls."""
    deadline = time.monotonic() + seconds
    while set(fake.visibility) != want and time.monotonic() < deadline:
        time.sleep(0.05)
    return set(fake.visibility) == want


def test_the_source_keeps_read_ahead_and_in_flight_messages_hidden_until_settled(
        clock: FakeClock) -> None:
    # Given one receive of 10 messages: 3 handed out, 7 still read ahead
    fake = FakeSqs([msg(i) for i in range(10)])
    source = source_with(fake, clock, backoff_on_failure=True)
    out = poll_all(source, 3, max_records=3)
    # When half the queue's 30 s timeout passes
    clock.advance(15)
    # Then every message esm holds is extended to 30 s
    assert settles_to(fake, {(f"h{i}", 30) for i in range(10)}), fake.visibility
    # And once one is acked and one released with a delay, only the others are extended
    fake.visibility.clear()
    source.ack(out[:1])
    source.release(out[1:2], 4.0)
    clock.advance(15)
    assert settles_to(fake, {("h1", 4)} | {(f"h{i}", 30) for i in range(2, 10)}), \
        fake.visibility
    source.close()


def test_extend_visibility_false_keeps_aws_behaviour(clock: FakeClock) -> None:
    fake = FakeSqs([msg(1)])
    source = source_with(fake, clock, extend_visibility=False)
    poll_all(source, 1)
    clock.advance(30)
    time.sleep(1.2)
    assert fake.visibility == []
    source.close()
