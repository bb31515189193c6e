"""SqsSource behaviour with a fake SQS client (no network, no real sleeps)."""

from __future__ import annotations

import threading
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from connectors.sqs import ops as sqs_ops
from connectors.sqs.source import SqsSettings, SqsSource
from esm.clock import FakeClock
from esm.errors import SourceUnavailable
from esm.interfaces import ConnectorContext
from tests.unit.threads_left import close_after_test

URL = "https://sqs.us-east-2.amazonaws.com/123456789012/q"


class FakeSqs:
    """Enough of the SQS API for the source: a queue of messages, deletes, visibility."""

    def __init__(self, messages: list[dict[str, Any]], fifo: bool = False) -> None:
        self.messages = messages
        self.fifo = fifo
        self.deleted: list[str] = []
        self.visibility: list[tuple[str, int]] = []
        self.receive_calls: list[dict[str, Any]] = []
        self.fail_receive = False
        self.fail_delete_once: set[str] = set()

    def get_queue_attributes(self, **kw: Any) -> dict[str, Any]:
        arn = "arn:aws:sqs:us-east-2:123456789012:" + kw["QueueUrl"].rsplit("/", 1)[1]
        return {"Attributes": {"QueueArn": arn, "VisibilityTimeout": "30",
                               "FifoQueue": str(self.fifo).lower(),
                               "ApproximateNumberOfMessages": str(len(self.messages)),
                               "ApproximateNumberOfMessagesNotVisible": "2"}}

    def receive_message(self, **kw: Any) -> dict[str, Any]:
        self.receive_calls.append(kw)
        if self.fail_receive:
            raise ConnectionError("endpoint unreachable")
        batch, self.messages = self.messages[:kw["MaxNumberOfMessages"]], \
            self.messages[kw["MaxNumberOfMessages"]:]
        return {"Messages": batch}

    def delete_message_batch(self, **kw: Any) -> dict[str, Any]:
        ok, failed = [], []
        for entry in kw["Entries"]:
            if entry["ReceiptHandle"] in self.fail_delete_once:
                self.fail_delete_once.discard(entry["ReceiptHandle"])
                failed.append({"Id": entry["Id"], "SenderFault": False, "Code": "InternalError"})
            else:
                self.deleted.append(entry["ReceiptHandle"])
                ok.append({"Id": entry["Id"]})
        return {"Successful": ok, "Failed": failed}

    def change_message_visibility_batch(self, **kw: Any) -> dict[str, Any]:
        self.visibility += [(e["ReceiptHandle"], e["VisibilityTimeout"]) for e in kw["Entries"]]
        return {"Successful": [{"Id": e["Id"]} for e in kw["Entries"]], "Failed": []}


class Listener:
    def __init__(self) -> None:
        self.assigned: list[str] = []

    def lanes_assigned(self, lanes: Any) -> None:
        self.assigned += list(lanes)

    def lanes_revoked(self, lanes: Any) -> None:
        pass


def msg(i: int, group: str | None = None) -> dict[str, Any]:
    attrs = {"ApproximateReceiveCount": "1", "SentTimestamp": "1700000000000"}
    if group is not None:
        attrs.update(MessageGroupId=group, SequenceNumber=str(i))
    return {"MessageId": f"m{i}", "ReceiptHandle": f"h{i}", "Body": f"b{i}",
            "MD5OfBody": "x", "Attributes": attrs}


def make_source(fake: Any, url: str = URL, **settings: Any) -> SqsSource:
    context = ConnectorContext("m", threading.Event(), FakeClock())
    source = close_after_test(SqsSource(
        SqsSettings(queue_url=url, region="us-east-2", pollers=1, **settings), context,
        client=fake))
    source.open(Listener())
    return source


def poll_all(source: SqsSource, want: int, max_records: int = 100) -> list[Any]:
    got: list[Any] = []
    for _ in range(50):
        got += source.poll(max_records, 1.0)
        if len(got) >= want:
            break
    return got


def test_receives_request_all_attributes_and_bounded_long_poll() -> None:
    # Given a real botocore client with a Stubber expecting the exact ReceiveMessage request
    client = boto3.client("sqs", region_name="us-east-2", aws_access_key_id="a",
                          aws_secret_access_key="b")
    with Stubber(client) as stub:
        stub.add_response("receive_message", {"Messages": []}, {
            "QueueUrl": URL, "MaxNumberOfMessages": 10, "WaitTimeSeconds": 20,
            "AttributeNames": ["All"], "MessageSystemAttributeNames": ["All"],
            "MessageAttributeNames": ["All"]})
        # When receiving with a 25 s wait / Then the wait is capped at SQS's 20 s
        assert sqs_ops.receive(client, URL, 50, 25) == []
        stub.assert_no_pending_responses()


def test_standard_queue_spreads_receives_round_robin_over_slots() -> None:
    # Given 30 messages and 3 slots
    fake = FakeSqs([msg(i) for i in range(30)])
    source = make_source(fake, slots=3)
    # When polling everything
    records = poll_all(source, 30)
    # Then each receive answer went whole to the next slot
    assert [r.item_id for r in records] == [f"m{i}" for i in range(30)]
    assert [r.lane for r in records[::10]] == ["slot-0", "slot-1", "slot-2"]


def test_paused_slots_get_nothing_and_all_paused_returns_empty() -> None:
    fake = FakeSqs([msg(i) for i in range(20)])
    source = make_source(fake, slots=2)
    source.pause(["slot-0"])
    assert {r.lane for r in poll_all(source, 20)} == {"slot-1"}
    fake.messages = [msg(i) for i in range(20, 30)]
    source.pause(["slot-1"])
    # When every slot is paused / Then poll hands out nothing, at once (the reader waits
    # for the settlement that resumes a slot; the source cannot see it)
    waits_before = list(source._context.clock.waits)  # type: ignore[attr-defined]
    assert source.poll(100, 1.0) == []
    assert source._context.clock.waits == waits_before  # type: ignore[attr-defined]
    source.resume(["slot-0"])
    assert {r.lane for r in poll_all(source, 10)} == {"slot-0"}


def test_ack_deletes_in_chunks_of_10_and_retries_failed_entries() -> None:
    fake = FakeSqs([msg(i) for i in range(25)])
    source = make_source(fake)
    records = poll_all(source, 25)
    fake.fail_delete_once = {"h3", "h17"}
    # When acking 25 records
    source.ack(records)
    # Then all are deleted, the two failed entries after a retry
    assert sorted(fake.deleted) == sorted(f"h{i}" for i in range(25))


def test_release_without_backoff_leaves_messages_to_visibility_timeout() -> None:
    fake = FakeSqs([msg(1)])
    source = make_source(fake)
    source.release(poll_all(source, 1), 5.0)
    assert fake.visibility == [] and fake.deleted == []


def test_release_with_backoff_sets_visibility_to_delay() -> None:
    fake = FakeSqs([msg(1), msg(2)])
    source = make_source(fake, backoff_on_failure=True)
    source.release(poll_all(source, 2), 7.4)
    assert fake.visibility == [("h1", 7), ("h2", 7)]


def test_fifo_group_is_withheld_until_settled_and_release_voids_the_rest() -> None:
    # Given a FIFO queue with group a (3 messages) and b (1)
    fake = FakeSqs([msg(0, "a"), msg(1, "a"), msg(2, "b"), msg(3, "a")], fifo=True)
    source = make_source(fake, url=URL + ".fifo", backoff_on_failure=True)
    records = poll_all(source, 4)
    assert [(r.lane, r.item_id) for r in records] == [
        ("a", "m0"), ("a", "m1"), ("b", "m2"), ("a", "m3")]
    # When a0 fails while a1, a3 are still held by the core
    source.release([records[0]], 0.0)
    # Then a1 and a3 are released with it, in one visibility change, and later acks of them
    # do not delete them (the group comes back in order)
    assert fake.visibility == [("h0", 0), ("h1", 0), ("h3", 0)]
    source.ack([records[1], records[3], records[2]])
    assert fake.deleted == ["h2"]


def test_fifo_new_messages_of_a_busy_group_wait_in_the_source() -> None:
    fake = FakeSqs([msg(0, "a")], fifo=True)
    source = make_source(fake, url=URL + ".fifo")
    first = poll_all(source, 1)
    fake.messages = [msg(1, "a"), msg(2, "c")]
    # When group a is still outstanding / Then only group c is handed out
    assert [r.item_id for r in poll_all(source, 1)] == ["m2"]
    source.ack(first)
    assert [r.item_id for r in poll_all(source, 1)] == ["m1"]


def test_receive_failure_raises_source_unavailable() -> None:
    fake = FakeSqs([])
    source = make_source(fake)
    fake.fail_receive = True
    with pytest.raises(SourceUnavailable, match="ReceiveMessage"):
        poll_all(source, 1)


def test_lag_reports_queue_depth_visible_plus_in_flight() -> None:
    source = make_source(FakeSqs([msg(1), msg(2), msg(3)]))
    assert source.lag() == {"queue": 5.0}


def test_stopped_source_polls_nothing_and_close_releases_buffered() -> None:
    fake = FakeSqs([msg(i) for i in range(10)])
    source = make_source(fake, slots=1)
    # Given 10 received messages of which only 3 were handed out
    assert len(poll_all(source, 3, max_records=3)) == 3
    # When the source closes / Then the 7 never handed out are made visible at once
    source.close()
    assert sorted(h for h, _ in fake.visibility) == sorted(f"h{i}" for i in range(3, 10))
    source._context.stop.set()
    assert source.poll(10, 1.0) == []


def received(i: int, receive_count: int) -> dict[str, Any]:
    message = msg(i)
    message["Attributes"]["ApproximateReceiveCount"] = str(receive_count)
    return message


def test_delivery_count_counts_failed_attempts_not_receives_of_a_killed_reader() -> None:
    # Given messages SQS received 4 times (readers killed before invoking them) and a
    # mapping that dead-letters after 3 failures
    fake = FakeSqs([received(1, 4), received(2, 4)])
    source = make_source(fake, max_receive_count=3)
    first = poll_all(source, 2)
    # Then this reader sees them as first attempts: nothing failed at the target yet
    assert [r.delivery_count for r in first] == [1, 1]
    # When one fails at the target and comes back
    source.release(first[:1], 1.0)
    fake.messages = [received(1, 5)]
    again = poll_all(source, 1)
    # Then it is its second attempt, and the event still shows SQS's own count
    assert again[0].delivery_count == 2
    assert again[0].payload["attributes"]["ApproximateReceiveCount"] == "5"
    # And once acked its count is forgotten
    source.ack(again)
    fake.messages = [received(1, 6)]
    assert poll_all(source, 1)[0].delivery_count == 1


def test_a_stopping_reader_handing_back_unused_messages_counts_no_failure() -> None:
    fake = FakeSqs([received(1, 1)])
    source = make_source(fake, max_receive_count=3)
    got = poll_all(source, 1)
    source._context.stop.set()
    source.release(got, 0.0)
    source._context.stop.clear()
    fake.messages = [received(1, 2)]
    assert poll_all(source, 1)[0].delivery_count == 1


def test_a_message_received_over_ten_times_the_limit_without_failing_is_a_crash_loop() -> None:
    fake = FakeSqs([received(1, 31)])
    source = make_source(fake, max_receive_count=3)
    assert poll_all(source, 1)[0].delivery_count == 31


def test_fifo_messages_handed_back_behind_a_failed_one_count_no_failure() -> None:
    # Given a FIFO group of three handed out, the first failing at the target
    fifo = URL + ".fifo"
    fake = FakeSqs([msg(1, "g"), msg(2, "g"), msg(3, "g")], fifo=True)
    source = make_source(fake, url=fifo, max_receive_count=3)
    got = poll_all(source, 3)
    source.release(got[:1], 1.0)
    # When the reader hands the later ones back unused, to keep the group's order
    source.release(got[1:], 0.0)
    # Then only the failed one counts a failed attempt when the group comes again
    fake.messages = [msg(1, "g"), msg(2, "g"), msg(3, "g")]
    again = poll_all(source, 3)
    assert {r.item_id: r.delivery_count for r in again} == {"m1": 2, "m2": 1, "m3": 1}
