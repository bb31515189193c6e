"""Target protection with a fake clock: the token bucket and rate limiter, the circuit
breaker, the idempotency key, and how the reader and lane worker use them."""

from __future__ import annotations

import json
import threading

import pytest

from esm.clock import FakeClock
from esm.config.types import CircuitBreaker, RateLimit
from esm.errors import InvokeError
from esm.ops.metrics import Metrics
from esm.protection.breaker import Admission, Breaker
from esm.protection.idempotency import idempotency_key
from esm.protection.rate_limit import RateLimiter, RateLimiters, TokenBucket
from esm.records import Record
from tests.unit.runtime_fakes import Rig, ScriptedTarget, mapping_config

# ---- token bucket and rate limiter ---------------------------------------------------------


def test_bucket_lets_a_burst_through_then_spaces_takers_by_the_rate():
    clock = FakeClock()
    bucket = TokenBucket(rate=20, capacity=2, clock=clock)
    # Given a full bucket of 2, the first two takers go at once
    assert [bucket.reserve(1), bucket.reserve(1)] == [0.0, 0.0]
    # Then each further taker waits one more twentieth of a second than the one before
    assert [bucket.reserve(1) for _ in range(3)] == pytest.approx([0.05, 0.10, 0.15])


def test_bucket_refills_with_time_but_never_beyond_its_capacity():
    clock = FakeClock()
    bucket = TokenBucket(rate=10, capacity=5, clock=clock)
    for _ in range(5):
        bucket.reserve(1)
    clock.advance(100)  # far longer than needed to refill
    assert [bucket.reserve(1) for _ in range(5)] == [0.0] * 5
    assert bucket.reserve(1) == pytest.approx(0.1)


def test_a_batch_larger_than_the_burst_waits_for_its_records_instead_of_never_going():
    bucket = TokenBucket(rate=100, capacity=10, clock=FakeClock())
    assert bucket.reserve(250) == pytest.approx(2.4)


def test_limiter_waits_on_the_clock_for_the_slower_of_its_two_buckets():
    clock = FakeClock()
    limiter = RateLimiter(RateLimit(records_per_second=50, invocations_per_second=10, burst=1),
                          clock)
    stop = threading.Event()
    start = clock.monotonic()
    # 20 invocations of 10 records: records allow 5 of them a second, invocations 10:
    # the records bucket decides, and the first record of the burst is free
    for _ in range(20):
        went, _ = limiter.wait_turn(10, stop)
        assert went
    elapsed = clock.monotonic() - start
    assert elapsed == pytest.approx((20 * 10 - 1) / 50, rel=0.01)


def test_limiter_gives_up_its_wait_when_the_daemon_stops():
    limiter = RateLimiter(RateLimit(invocations_per_second=1, burst=1), FakeClock())
    stop = threading.Event()
    assert limiter.wait_turn(1, stop)[0]
    stop.set()
    went, waited = limiter.wait_turn(1, stop)
    assert (went, waited) == (False, pytest.approx(1.0))


def test_mappings_of_one_group_share_a_limiter_and_others_get_their_own():
    limiters = RateLimiters(FakeClock())
    limit = RateLimit(invocations_per_second=20)
    a = mapping_config(name="a", rate_limit=limit, rate_limit_group="billing")
    b = mapping_config(name="b", rate_limit=limit, rate_limit_group="billing")
    c = mapping_config(name="c", rate_limit=limit)
    assert limiters.for_mapping(a) is limiters.for_mapping(b)
    assert limiters.for_mapping(c) is not limiters.for_mapping(a)
    assert limiters.for_mapping(mapping_config(name="d")) is None


def test_reader_invokes_no_faster_than_the_rate_limit():
    # Given a stream mapping limited to 4 invocations per second, burst 1
    target = ScriptedTarget()
    rig = Rig(mapping_config(batch_size=1), target, lanes=3)
    rig.worker.limiter = RateLimiter(RateLimit(invocations_per_second=4, burst=1), rig.clock)
    rig.put(*[json.dumps({"id": i}) for i in range(9)])
    start = rig.clock.monotonic()
    # When it runs everything
    rig.run_until_quiet()
    # Then 9 invocations took 8 quarter-seconds of clock time, and the wait is counted
    assert len(target.calls) == 9
    assert rig.clock.monotonic() - start == pytest.approx(2.0)
    assert rig.metrics.value("rate_limited_seconds") > 0


# ---- circuit breaker -------------------------------------------------------------------


def opened(clock: FakeClock, threshold: int = 3, interval: float = 10.0) -> Breaker:
    breaker = Breaker(CircuitBreaker(threshold, interval), clock, "orders")
    for _ in range(threshold):
        breaker.record(breaker.admit(threading.Event()) or Admission(), True, "HTTP 503")
    return breaker


def test_breaker_opens_after_the_threshold_of_consecutive_invoke_errors():
    clock = FakeClock()
    breaker = Breaker(CircuitBreaker(3, 10.0), clock, "orders")
    for _ in range(2):
        breaker.record(Admission(), True, "HTTP 503")
    assert not breaker.is_open
    breaker.record(Admission(), True, "HTTP 503")
    assert breaker.is_open
    assert "3 consecutive invoke errors" in breaker.reason and "HTTP 503" in breaker.reason


def test_an_answer_from_the_function_resets_the_count_of_consecutive_errors():
    breaker = Breaker(CircuitBreaker(3, 10.0), FakeClock(), "orders")
    for failed in (True, True, False, True, True):  # a function error counts as an answer
        breaker.record(Admission(), failed, "x")
    assert not breaker.is_open


def test_open_breaker_lets_one_probe_through_per_interval():
    clock = FakeClock()
    breaker = opened(clock, interval=10.0)
    stop = threading.Event()
    opened_at = clock.monotonic()
    # When a lane asks to invoke, it waits for the probe slot, one interval later
    probe = breaker.admit(stop)
    assert probe == Admission(probe=True)
    assert clock.monotonic() - opened_at == pytest.approx(10.0)
    # And a failed probe keeps the breaker open for another interval
    breaker.record(probe, True, "HTTP 503")
    assert breaker.is_open
    second = breaker.admit(stop)
    assert second is not None and second.probe
    assert clock.monotonic() - opened_at == pytest.approx(20.0)
    # And a probe that reaches the function closes it: everyone goes at once
    breaker.record(second, False)
    assert not breaker.is_open
    assert breaker.admit(stop) == Admission(probe=False)
    assert breaker.probes == 2


def test_waiting_for_a_probe_slot_ends_when_the_daemon_stops():
    breaker = opened(FakeClock())
    stop = threading.Event()
    stop.set()
    assert breaker.admit(stop) is None


def test_reader_pauses_every_lane_and_reports_paused_while_the_breaker_is_open():
    # Given a stream mapping with two lanes whose target is down
    down = {"value": True}

    def behaviour(records: list[dict]) -> None:
        if down["value"]:
            raise InvokeError("HTTP 503: unavailable", retry_after_seconds=None)

    clock_breaker = CircuitBreaker(failure_threshold=2, probe_interval_seconds=5.0)
    target = ScriptedTarget(behaviour)
    rig = Rig(mapping_config(batch_size=2, circuit_breaker=clock_breaker), target, lanes=2)
    breaker = Breaker(clock_breaker, rig.clock, "test")
    rig.worker.breaker = rig.reader.guard.breaker = breaker
    rig.put(*[json.dumps({"id": i}) for i in range(8)])
    # When the breaker opens (the failing invocations are counted)
    breaker.record(Admission(), True, "HTTP 503")
    breaker.record(Admission(), True, "HTTP 503")
    rig.turn(run_workers=False)  # nothing to probe with yet: it reads
    rig.turn(run_workers=False)
    # Then the mapping is Paused with the reason, the metric is 1, and lanes are paused
    assert rig.status.state == "Paused"
    assert "consecutive invoke errors" in rig.status.state_transition_reason
    assert rig.metrics.circuit_open._value.get() == 1
    assert set(rig.source._paused) == {"lane-0", "lane-1"}
    # And only one batch went out (to probe with), although two lanes have batches ready
    assert rig.reader.in_flight.count == 1
    # When the target comes back, the probe succeeds and reading resumes
    down["value"] = False
    rig.run_until_quiet()
    assert rig.status.state == "Enabled"
    assert rig.metrics.circuit_open._value.get() == 0
    assert sorted(json.loads(b)["id"] for b in target.invoked_bodies()) == list(range(8))
    assert rig.broker.committed("lane-0") == 4 and rig.broker.committed("lane-1") == 4


def test_queue_batches_are_held_not_released_while_a_breaker_guards_the_target():
    calls = {"n": 0}

    def behaviour(records: list[dict]) -> None:
        calls["n"] += 1
        if calls["n"] <= 4:
            raise InvokeError("connection refused")

    settings = CircuitBreaker(failure_threshold=2, probe_interval_seconds=5.0)
    mapping = mapping_config(family="queue", batch_size=2, circuit_breaker=settings)
    rig = Rig(mapping, ScriptedTarget(behaviour))
    rig.worker.breaker = rig.reader.guard.breaker = Breaker(settings, rig.clock, "test")
    rig.put(json.dumps({"id": 1}), json.dumps({"id": 2}))
    rig.run_until_quiet()
    # Then the records were never handed back to the queue and were deleted once through
    assert rig.metrics.value("released") == 0
    assert rig.metrics.value("deleted") == 2
    assert rig.worker.breaker.probes >= 1


# ---- idempotency key -------------------------------------------------------------------


def record(lane: str, item_id: str) -> Record:
    return Record(lane=lane, position=item_id, item_id=item_id, payload={}, size_bytes=1,
                  timestamp=0.0)


def test_key_is_the_same_for_the_same_records_and_differs_otherwise():
    batch = [record("orders-0", "orders-0:5"), record("orders-0", "orders-0:6")]
    again = [record("orders-0", "orders-0:5"), record("orders-0", "orders-0:6")]
    key = idempotency_key("m", "orders-0", batch)
    assert key == idempotency_key("m", "orders-0", again)
    assert len(key) == 64 and int(key, 16) >= 0
    others = {
        idempotency_key("other", "orders-0", batch),
        idempotency_key("m", "orders-1", batch),
        idempotency_key("m", "orders-0", batch[:1]),
        idempotency_key("m", "orders-0", batch[1:]),
        idempotency_key("m", "orders-0", [batch[0], record("orders-0", "orders-0:7")]),
    }
    assert key not in others and len(others) == 5


def test_invoker_puts_the_key_on_the_event_and_keeps_it_across_retries():
    seen: list[str] = []

    class KeyTarget(ScriptedTarget):
        def invoke(self, event, timeout_seconds):  # type: ignore[no-untyped-def]
            seen.append(event.idempotency_key)
            return super().invoke(event, timeout_seconds)

    fails = {"n": 0}

    def behaviour(records: list[dict]) -> None:
        fails["n"] += 1
        if fails["n"] == 1:
            raise InvokeError("HTTP 502")

    rig = Rig(mapping_config(batch_size=2), KeyTarget(behaviour))
    rig.put(json.dumps({"id": 1}), json.dumps({"id": 2}), json.dumps({"id": 3}))
    rig.run_until_quiet()
    # The first batch was invoked twice with one key; the next batch has another
    assert len(seen) == 3 and seen[0] == seen[1] != seen[2]


def test_metrics_export_lane_lag_only_for_lanes_still_owned():
    metrics = Metrics().for_mapping("m")
    metrics.set_lane_lag({"t-0": 5.0, "t-1": 7.0})
    metrics.set_lane_lag({"t-1": 3.0})
    samples = {tuple(s.labels.values()): s.value for family in
               metrics._lane_lag.collect() for s in family.samples}
    assert samples == {("m", "t-1"): 3.0}


def test_reader_reports_sum_and_max_lag_over_lanes_and_the_oldest_records_age():
    # Given 5 records on lane-0 and 2 on lane-1, put 30 s ago (checklist 68)
    rig = Rig(mapping_config(batch_size=10, lane_lag_metrics=True), ScriptedTarget(), lanes=2)
    rig.put(*[json.dumps({"id": i}) for i in range(5)], lane="lane-0")
    rig.put(*[json.dumps({"id": i}) for i in range(2)], lane="lane-1")
    rig.clock.advance(30)
    # When the reader reads and dispatches, but no batch has finished
    rig.turn(run_workers=False)
    rig.clock.advance(6)  # the next lag report is due
    rig.turn(run_workers=False)
    # Then lag is summed and maxed over the lanes, per lane too, and the age is 36 s
    m = rig.metrics
    assert (m.sum_offset_lag._value.get(), m.max_offset_lag._value.get()) == (7.0, 5.0)
    samples = {s.labels["lane"]: s.value for f in m._lane_lag.collect() for s in f.samples}
    assert samples == {"lane-0": 5.0, "lane-1": 2.0}
    assert m.oldest_record_age._value.get() == pytest.approx(36.0)
    # And once everything is finished nothing is left waiting
    rig.run_until_quiet()
    rig.clock.advance(6)
    rig.turn()
    assert m.sum_offset_lag._value.get() == 0.0 and m.oldest_record_age._value.get() == 0.0
