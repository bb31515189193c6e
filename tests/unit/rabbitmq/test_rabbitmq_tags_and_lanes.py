"""Delivery-tag bookkeeping (each tag answered once, runs as one multiple ack, rejects after
their back-off) and the lanes deliveries go to."""

from __future__ import annotations

from connectors.rabbitmq.attempts import FailedDeliveries, broker_count, count_key
from connectors.rabbitmq.lanes import SlotPlan
from connectors.rabbitmq.tags import TagBook


def book(*tags: int) -> TagBook:
    tags_book = TagBook()
    for tag in tags:
        tags_book.delivered(tag)
    return tags_book


def test_a_run_of_the_oldest_tags_is_one_multiple_ack() -> None:
    tags = book(1, 2, 3, 4, 5)
    assert tags.acks([1, 2, 3]) == (3, [])
    assert tags.acks([5]) == (None, [5])  # 4 is still owed: 5 alone
    assert tags.acks([4]) == (4, [])
    assert len(tags) == 0


def test_a_tag_is_never_answered_twice() -> None:
    tags = book(1, 2)
    assert tags.acks([1]) == (1, [])
    assert tags.acks([1, 2]) == (2, [])
    assert tags.acks([1, 2]) == (None, [])


def test_a_rejected_tag_waits_for_its_time_and_is_never_covered_by_a_multiple_ack() -> None:
    tags = book(1, 2, 3)
    assert tags.schedule_rejects([1], due=10.0) == [1]
    assert tags.acks([2, 3]) == (None, [2, 3])  # 1 still owed: no multiple ack over it
    assert tags.acks([1]) == (None, [])  # waiting for its reject, not ackable
    assert tags.due_rejects(9.9) == []
    assert tags.next_reject_at() == 10.0
    assert tags.due_rejects(10.0) == [1]
    assert len(tags) == 0


def test_one_lane_per_queue_at_concurrency_one() -> None:
    plan = SlotPlan(["a", "b"], concurrency=1, batch_size=2)
    assert plan.lanes == ["a", "b"]
    assert [plan.next_lane("a") for _ in range(3)] == ["a", "a", "a"]
    plan.pause(["a"])
    assert plan.next_lane("a") is None and plan.open_queues() == ["b"]


def test_slots_take_runs_of_a_batch_and_skip_paused_ones() -> None:
    plan = SlotPlan(["q"], concurrency=3, batch_size=2)
    assert [plan.next_lane("q") for _ in range(5)] == [
        "q#slot-0", "q#slot-0", "q#slot-1", "q#slot-1", "q#slot-2"]
    plan.pause(["q#slot-2", "q#slot-0"])
    assert plan.next_lane("q") == "q#slot-1"
    plan.pause(["q#slot-1"])
    assert plan.next_lane("q") is None and plan.all_paused()


def test_lane_runs_give_what_next_lane_gives_one_by_one() -> None:
    one_by_one = SlotPlan(["q"], concurrency=3, batch_size=4)
    in_runs = SlotPlan(["q"], concurrency=3, batch_size=4)
    expected = [one_by_one.next_lane("q") for _ in range(17)]
    got: list[str | None] = []
    for limit in (3, 5, 1, 8):
        lane, run = in_runs.lane_run("q", limit)
        assert 1 <= run <= limit
        got += [lane] * run
    assert got == expected[:len(got)] and len(got) >= 4  # runs end at a slot's batch
    in_runs.pause(["q#slot-0", "q#slot-1", "q#slot-2"])
    assert in_runs.lane_run("q", 10) == (None, 0)


def test_failed_deliveries_are_bounded_and_forgotten_on_ack() -> None:
    counts = FailedDeliveries(capacity=2)
    for key in ("a", "a", "b", "c"):
        counts.failed(key)
    assert (counts.get("a"), counts.get("b"), counts.get("c")) == (0, 1, 1)  # oldest dropped
    counts.forget(["b"])
    assert counts.get("b") == 0 and len(counts) == 1


def test_count_keys_and_broker_counts() -> None:
    assert count_key("q::/", "m1", "eA==") == "id:m1"
    assert count_key("q::/", None, "eA==") != count_key("r::/", None, "eA==")
    assert broker_count({"x-delivery-count": 2}) == 2
    assert broker_count(None) == 0 and broker_count({"x-delivery-count": "2"}) == 0
