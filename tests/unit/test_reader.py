"""The reader/lane loop, driven by a memory source, a scripted target and a fake clock.
No threads, no sleeps: batches run when the test says so."""

from __future__ import annotations

import json

from esm.pipeline.reader_checks import warn_if_visibility_below_timeout
from esm.records import MAX_PAYLOAD_BYTES
from tests.unit.runtime_fakes import ListDestination, Rig, ScriptedTarget, mapping_config


def bodies(*ids: int) -> list[str]:
    return [json.dumps({"id": i}) for i in ids]


def ids_of(records: list[dict]) -> list[int]:
    return [json.loads(r["body"])["id"] for r in records]


def test_batches_close_at_batch_size_and_keep_lane_order():
    # Given 7 records on one lane and batch_size 3
    target = ScriptedTarget()
    rig = Rig(mapping_config(batch_size=3), target)
    rig.put(*bodies(*range(7)))
    # When the reader runs until quiet
    rig.run_until_quiet()
    # Then the target saw batches of 3, 3, 1 in order and everything was committed
    assert [len(call) for call in target.calls] == [3, 3, 1]
    assert target.invoked_bodies() == bodies(*range(7))
    assert rig.broker.committed("lane-0") == 7


def test_filtered_out_records_are_committed_without_invoking():
    target = ScriptedTarget()
    mapping = mapping_config(filter_patterns=('{"body": {"keep": [true]}}',))
    rig = Rig(mapping, target)
    rig.put({"id": 1, "keep": True}, {"id": 2, "keep": False}, {"id": 3}, "plain text")
    rig.run_until_quiet()
    assert [ids_of([{"body": b} for b in call]) for call in target.calls] == [[1]]
    assert rig.broker.committed("lane-0") == 4
    assert rig.metrics.value("filtered_out") == 3
    assert rig.metrics.value("polled") == 4


def test_stream_commit_never_passes_an_unfinished_record():
    # Given a batch in flight and a filtered-out record polled after it
    target = ScriptedTarget()
    mapping = mapping_config(batch_size=2, filter_patterns=('{"body": {"keep": [true]}}',))
    rig = Rig(mapping, target)
    rig.put({"id": 1, "keep": True}, {"id": 2, "keep": True}, {"id": 3, "keep": False})
    # When the reader polls and dispatches, but the batch has not run yet
    rig.turn(run_workers=False)
    rig.turn(run_workers=False)
    # Then nothing is committed: the filtered record sits behind the in-flight batch
    assert rig.broker.committed("lane-0") == 0
    # When the batch completes
    rig.executor.run_all()
    rig.reader.in_flight.apply(0)
    # Then all three are committed
    assert rig.broker.committed("lane-0") == 3


def test_a_lane_never_has_two_batches_in_flight_and_is_paused_while_one_waits():
    target = ScriptedTarget()
    rig = Rig(mapping_config(batch_size=2), target)
    rig.put(*bodies(*range(6)))
    rig.turn(run_workers=False)  # polls all 6 → three full batches of 2
    rig.turn(run_workers=False)  # dispatches one; two wait behind it
    assert len(rig.executor.pending) == 1
    assert "lane-0" in rig.source._paused
    rig.turn(run_workers=False)  # still only one in flight on the lane
    assert len(rig.executor.pending) == 1
    rig.run_until_quiet()
    assert target.calls == [bodies(0, 1), bodies(2, 3), bodies(4, 5)]
    assert "lane-0" not in rig.source._paused


def test_a_busy_lane_keeps_filling_its_open_batch():
    # Given window 0 and a lane with a batch in flight
    target = ScriptedTarget()
    rig = Rig(mapping_config(batch_size=10), target)
    rig.put(*bodies(1))
    rig.turn(run_workers=False)
    rig.turn(run_workers=False)  # [1] in flight
    # When more records arrive one poll at a time
    for i in range(2, 6):
        rig.put(*bodies(i))
        rig.turn(run_workers=False)
    # Then they wait in one open batch, sent as one invocation once the lane is free
    rig.run_until_quiet()
    assert target.calls == [bodies(1), bodies(2, 3, 4, 5)]


def test_lanes_are_processed_independently():
    target = ScriptedTarget()
    rig = Rig(mapping_config(batch_size=10), target, lanes=2)
    rig.put(*bodies(1, 2, 3, 4))  # round-robin: lane-0 gets 1, 3; lane-1 gets 2, 4
    rig.run_until_quiet()
    assert sorted(map(tuple, target.calls)) == sorted([tuple(bodies(1, 3)), tuple(bodies(2, 4))])


def test_back_pressure_stops_polling_when_the_buffer_is_full():
    target = ScriptedTarget()
    rig = Rig(mapping_config(batch_size=2), target, lanes=4, max_in_flight=1)
    rig.put(*bodies(*range(40)))
    for _ in range(10):
        rig.turn(run_workers=False)
    # max_buffered_records = batch_size * (max_in_flight + 1) = 4, plus the in-flight batch
    assert rig.metrics.value("polled") <= 2 * (1 + 1) + 2
    rig.run_until_quiet()
    assert sorted(target.invoked_bodies()) == sorted(bodies(*range(40)))


def test_bisects_failed_batch_until_poison_record_is_isolated():
    # Given a poison record in a batch of 8, bisect on, 1 retry, and a destination
    def behaviour(records):
        if 5 in ids_of(records):
            raise ValueError("poison")
    target = ScriptedTarget(behaviour)
    dest = ListDestination()
    mapping = mapping_config(batch_size=8, bisect_batch_on_function_error=True,
                             maximum_retry_attempts=1)
    rig = Rig(mapping, target, dest)
    rig.put(*bodies(*range(8)))
    # When it runs
    rig.run_until_quiet()
    # Then only the poison record reached the destination, after 2 invocations on its own
    assert dest.dead_bodies() == bodies(5)
    assert dest.notices[0]["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert dest.notices[0]["requestContext"]["approximateInvokeCount"] >= 2
    # and every other record was processed successfully, in lane order
    succeeded = [c for c in target.calls if json.dumps({"id": 5}) not in c]
    assert [b for c in succeeded for b in c] == bodies(0, 1, 2, 3, 4, 6, 7)
    assert rig.broker.committed("lane-0") == 8
    assert rig.metrics.value("bisections") >= 3


def test_partial_failure_retries_from_the_lowest_failed_record():
    seen: set[str] = set()

    def behaviour(records):
        failures = []
        for r in records:
            if json.loads(r["body"])["id"] == 2 and r["messageId"] not in seen:
                seen.add(r["messageId"])
                failures.append({"itemIdentifier": r["messageId"]})
        return {"batchItemFailures": failures}
    target = ScriptedTarget(behaviour)
    mapping = mapping_config(batch_size=4, function_response_types=("ReportBatchItemFailures",))
    rig = Rig(mapping, target)
    rig.put(*bodies(0, 1, 2, 3))
    rig.run_until_quiet()
    assert target.calls == [bodies(0, 1, 2, 3), bodies(2, 3)]
    assert rig.broker.committed("lane-0") == 4
    assert rig.metrics.value("failed_invoke") == 1


def test_retries_wait_with_exponential_backoff_on_the_fake_clock():
    attempts = []

    def behaviour(records):
        attempts.append(1)
        if len(attempts) < 4:
            raise RuntimeError("down")
    target = ScriptedTarget(behaviour)
    rig = Rig(mapping_config(maximum_retry_attempts=5), target)
    rig.put(*bodies(1))
    rig.run_until_quiet()
    assert len(attempts) == 4
    assert rig.clock.waits[:3] == [1.0, 2.0, 4.0]
    assert rig.broker.committed("lane-0") == 1


def test_invoke_errors_do_not_use_up_retries():
    from esm.errors import InvokeError
    calls = []

    def behaviour(records):
        calls.append(1)
        if len(calls) <= 3:
            raise InvokeError("503 from target")
        raise ValueError("function error")
    target = ScriptedTarget(behaviour)
    dest = ListDestination()
    rig = Rig(mapping_config(maximum_retry_attempts=0), target, dest)
    rig.put(*bodies(1))
    rig.run_until_quiet()
    # 3 invoke errors (not counted) + 1 function error (retries exhausted at 0)
    assert len(calls) == 4
    assert dest.dead_bodies() == bodies(1)


def test_record_older_than_maximum_record_age_is_dead_lettered_without_invoking():
    target = ScriptedTarget()
    dest = ListDestination()
    rig = Rig(mapping_config(maximum_record_age_in_seconds=60), target, dest)
    rig.put(*bodies(1))
    rig.clock.advance(61)
    rig.put(*bodies(2))
    rig.run_until_quiet()
    assert target.invoked_bodies() == bodies(2)
    assert dest.dead_bodies() == bodies(1)
    assert dest.notices[0]["requestContext"]["condition"] == "RecordAgeExceeded"
    assert "responseContext" not in dest.notices[0]


def test_oversized_record_goes_to_destination_and_does_not_block_the_lane():
    target = ScriptedTarget()
    dest = ListDestination()
    rig = Rig(mapping_config(batch_size=10), target, dest)
    huge = json.dumps({"id": 2, "blob": "x" * MAX_PAYLOAD_BYTES})
    rig.put(json.dumps({"id": 1}), huge, json.dumps({"id": 3}))
    rig.run_until_quiet()
    assert target.invoked_bodies() == bodies(1, 3)
    assert dest.notices[0]["requestContext"]["condition"] == "MaximumPayloadSizeExceeded"
    assert rig.broker.committed("lane-0") == 3


def test_destination_write_is_retried_until_durable_before_ack():
    target = ScriptedTarget(lambda records: (_ for _ in ()).throw(ValueError("bad")))
    dest = ListDestination(fail_times=3)
    rig = Rig(mapping_config(maximum_retry_attempts=0), target, dest)
    rig.put(*bodies(1))
    rig.run_until_quiet()
    assert len(dest.notices) == 1
    assert rig.metrics.value("destination_failures") == 3
    assert rig.broker.committed("lane-0") == 1


def test_without_destination_discarded_records_are_counted_as_dropped():
    target = ScriptedTarget(lambda records: (_ for _ in ()).throw(ValueError("bad")))
    rig = Rig(mapping_config(maximum_retry_attempts=1), target, None)
    rig.put(*bodies(1))
    rig.run_until_quiet()
    assert rig.metrics.value("dropped") == 1
    assert rig.broker.committed("lane-0") == 1


def test_queue_family_acks_successes_and_releases_partial_failures():
    def behaviour(records):
        return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in records
                                      if json.loads(r["body"])["id"] == 2]}
    target = ScriptedTarget(behaviour)
    mapping = mapping_config("queue", batch_size=3,
                             function_response_types=("ReportBatchItemFailures",))
    rig = Rig(mapping, target)
    rig.put(*bodies(1, 2, 3))
    rig.turn()
    rig.turn()
    assert sorted(rig.broker.acked) == ["lane-0:0", "lane-0:2"]
    assert rig.metrics.value("released") == 1


def test_queue_family_dead_letters_after_max_deliveries():
    target = ScriptedTarget(lambda records: (_ for _ in ()).throw(ValueError("bad")))
    dest = ListDestination()
    mapping = mapping_config("queue", batch_size=1, max_deliveries=3)
    rig = Rig(mapping, target, dest)
    rig.put(*bodies(1))
    for _ in range(30):
        rig.turn()
        rig.clock.advance(10)  # past the release delay, within the visibility timeout
    assert len(target.calls) == 3
    assert dest.dead_bodies() == bodies(1)
    assert rig.broker.acked == ["lane-0:0"]


def test_stop_drains_in_flight_batches_and_commits_them():
    target = ScriptedTarget()
    rig = Rig(mapping_config(batch_size=2), target)
    rig.put(*bodies(1, 2, 3, 4))
    rig.turn(run_workers=False)  # polls the first batch
    rig.turn(run_workers=False)  # dispatches it
    rig.stop.set()
    rig.executor.run_all()
    rig.reader.drain()
    assert rig.broker.committed("lane-0") == 2


def test_revoked_lanes_are_never_acked_again():
    target = ScriptedTarget()
    rig = Rig(mapping_config(batch_size=2), target, lanes=2)
    rig.put(*bodies(1, 2, 3, 4))
    rig.turn(run_workers=False)  # polls lane-0's batch
    rig.turn(run_workers=False)  # dispatches it, polls lane-1's
    # lane-0's batch is in flight; the broker takes lane-0 away and the drain budget runs out
    rig.reader.drain_seconds = 0.0
    rig.reader.lanes_revoked(["lane-0"])
    rig.executor.run_all()
    rig.reader.in_flight.apply(0)
    rig.run_until_quiet()
    assert rig.broker.committed("lane-0") == 0
    assert rig.broker.committed("lane-1") == 2


def test_ordered_queue_lane_releases_its_buffered_records_after_a_failure():
    # Given an ordered queue lane (like an SQS FIFO group) with records buffered behind
    # an in-flight batch that fails
    target = ScriptedTarget(lambda records: (_ for _ in ()).throw(ValueError("bad")))
    rig = Rig(mapping_config("queue", batch_size=2), target)
    rig.source.ordered_lanes = True
    rig.put(*bodies(1, 2, 3, 4))
    rig.turn(run_workers=False)  # polls all four: [1, 2] and [3, 4]
    rig.turn(run_workers=False)  # dispatches [1, 2]; [3, 4] waits
    # When the in-flight batch fails and is released
    rig.executor.run_all()
    rig.reader.in_flight.apply(0)
    # Then [3, 4] was released too, never invoked ahead of 1 and 2
    assert target.calls == [bodies(1, 2)]
    assert rig.metrics.value("released") == 4
    assert not rig.executor.pending


def test_lanes_that_come_with_the_data_are_forgotten_once_idle_and_still_acked():
    # Given a queue whose records come on lanes the source never announced (as SQS FIFO
    # message groups do), one record per group, and a batch that fails once on one group
    def fail_group_7_once(records):
        if any(r["body"] == json.dumps({"id": 7}) for r in records) and not failed:
            failed.append(7)
            raise ValueError("once")
    failed: list[int] = []
    target = ScriptedTarget(fail_group_7_once)
    rig = Rig(mapping_config("queue", batch_size=2), target)
    for n in range(40):
        rig.put({"id": n}, lane=f"group-{n}")
    # When the reader runs until quiet (the failed record comes back after its release)
    rig.run_until_quiet()
    rig.clock.advance(5)
    rig.run_until_quiet()
    # Then every record was invoked and deleted, group 7's twice, and the buffer keeps
    # state only for the lane the source announced, not for the 40 groups it saw
    assert sorted(ids_of([{"body": b} for call in target.calls for b in call])) == \
        sorted([*range(40), 7])
    assert rig.broker.backlog() == {}
    assert len(rig.broker.acked) == 40
    assert set(rig.reader.buffer.lanes) <= {"lane-0"}
    assert rig.reader.in_flight.count == 0


def test_reader_keeps_polling_with_every_lane_paused_while_the_buffer_is_full():
    # Given a target that never finishes (batches stay in flight) and a full buffer
    target = ScriptedTarget()
    rig = Rig(mapping_config(batch_size=2), target, lanes=3, max_in_flight=1)
    rig.put(*bodies(*range(30)))
    polls = []
    original = rig.source.poll
    rig.source.poll = lambda n, t: polls.append(n) or original(n, t)
    for _ in range(8):
        rig.turn(run_workers=False)
    # Then every lane is paused at the source, yet poll is still called each turn
    # (Kafka would otherwise evict the consumer from its group)
    assert rig.source._paused == {"lane-0", "lane-1", "lane-2"}
    assert len(polls) == 8
    assert rig.metrics.value("polled") <= 2 * (1 + 1) + 2
    # When the in-flight batch finishes, lanes resume and everything is delivered
    rig.run_until_quiet()
    assert sorted(target.invoked_bodies()) == sorted(bodies(*range(30)))
    assert rig.source._paused == set()


def test_queue_acks_reach_the_source_before_a_release_of_the_same_turn():
    # Given a queue batch that partly fails (ack some, release one)
    def behaviour(records):
        return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in records
                                      if json.loads(r["body"])["id"] == 3]}
    target = ScriptedTarget(behaviour)
    mapping = mapping_config("queue", batch_size=3,
                             function_response_types=("ReportBatchItemFailures",))
    rig = Rig(mapping, target)
    calls = []
    ack, release = rig.source.ack, rig.source.release
    rig.source.ack = lambda records: calls.append(("ack", len(records))) or ack(records)
    rig.source.release = lambda records, d: calls.append(("release", len(records))) or \
        release(records, d)
    rig.put(*bodies(1, 2, 3))
    # When its settlements are applied in one turn
    rig.turn()
    rig.turn()
    # Then the source saw the ack first (SQS FIFO voids a group's other records on release)
    assert calls[:2] == [("ack", 2), ("release", 1)]


def test_lane_worker_log_lines_name_their_lane():
    # Given log records passing through esm's context filter
    import logging

    from esm.ops.logs import ContextFilter

    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    handler = Keep(level=logging.WARNING)
    handler.addFilter(ContextFilter())
    logging.getLogger("esm").addHandler(handler)
    try:
        # When a lane worker drops a record (no destination) and logs it
        target = ScriptedTarget(lambda records: (_ for _ in ()).throw(ValueError("bad")))
        rig = Rig(mapping_config(maximum_retry_attempts=0), target, None, lanes=2)
        rig.put(*bodies(1, 2))
        rig.run_until_quiet()
    finally:
        logging.getLogger("esm").removeHandler(handler)
    # Then each warning carries the lane of its batch
    dropped = [r for r in seen if "dropping" in r.getMessage()]
    assert sorted(getattr(r, "lane", "") for r in dropped) == ["lane-0", "lane-1"]


def test_a_queue_visibility_timeout_shorter_than_the_target_timeout_is_reported(caplog):
    # Given a queue source whose broker says its visibility timeout is 5 s, and a 30 s target
    rig = Rig(mapping_config("queue", target_timeout_seconds=30.0), ScriptedTarget())
    rig.source.visibility_timeout_seconds = 5
    # When the reader starts
    with caplog.at_level("WARNING", logger="esm.pipeline.reader"):
        warn_if_visibility_below_timeout(rig.reader.mapping, rig.source, rig.status)
    # Then it warns with both figures and shows it in the mapping's status
    assert "visibility timeout (5s) is shorter than the target's timeout_seconds (30.0s)" \
        in caplog.text
    assert "5s < target timeout 30.0s" in rig.status.snapshot()["lastError"]


def test_a_matcher_that_raises_on_one_record_delivers_it_and_filters_the_rest(caplog):
    # Given a filter, and a matcher bug that raises on one record
    target = ScriptedTarget()
    mapping = mapping_config(filter_patterns=('{"body": {"keep": [true]}}',))
    rig = Rig(mapping, target)
    real = rig.reader.matcher.matches

    def buggy(view):
        if view["body"].get("id") == 2:
            raise RuntimeError("matcher bug")
        return real(view)

    object.__setattr__(rig.reader.matcher, "matches", buggy)
    rig.put({"id": 1, "keep": True}, {"id": 2, "keep": False}, {"id": 3, "keep": False})
    rig.run_until_quiet()
    # Then the record it raised on is delivered (never dropped), the others filtered as usual
    assert [ids_of([{"body": b} for b in call]) for call in target.calls] == [[1, 2]]
    assert rig.metrics.value("filtered_out") == 1
    assert rig.broker.committed("lane-0") == 3
    assert "filter raised on record" in caplog.text


def test_a_lane_that_settles_while_the_full_buffer_waits_is_dispatched_before_polling():
    # Given a full buffer (every lane paused) and a batch in flight
    import queue as queue_module

    target = ScriptedTarget()
    rig = Rig(mapping_config(batch_size=2), target, lanes=2, max_in_flight=1)
    rig.put(*bodies(*range(12)))
    for _ in range(4):  # one batch in flight; the buffer (4 records) fills behind it
        rig.turn(run_workers=False)
    assert len(rig.executor.pending) == 1 and rig.reader.buffer.apply_limit()

    class ArrivesDuringTheWait(queue_module.SimpleQueue):
        """The settlement comes in while the reader waits on the full buffer, not before."""

        def get_nowait(self):
            raise queue_module.Empty

    late = ArrivesDuringTheWait()
    rig.reader.in_flight._queue = rig.reader.dispatcher.settlements = late
    rig.executor.run_all()  # the batch finishes: its settlement is queued
    polls = []
    original = rig.source.poll
    rig.source.poll = lambda n, t: polls.append(n) or original(n, t)
    # When the reader takes its turn
    rig.reader.step()
    # Then it applied the settlement and returned to dispatch, without polling (a poll with
    # every lane paused and nothing in flight used to wait out its whole timeout idle)
    assert polls == []
    rig.reader.in_flight._queue = rig.reader.dispatcher.settlements = queue_module.SimpleQueue()
    rig.reader.step()
    assert len(rig.executor.pending) == 1  # the next batch is on its way
    rig.run_until_quiet()
    assert sorted(target.invoked_bodies()) == sorted(bodies(*range(12)))


def test_the_buffer_holds_a_waiting_batch_per_batch_that_can_run():
    # Given batches of 2 and 4 workers
    rig = Rig(mapping_config(batch_size=2), ScriptedTarget(), lanes=1, max_in_flight=4)
    # Then with one lane only one batch can run: one in flight, one waiting
    assert rig.reader.max_buffered_records == 2 * (1 + 1)
    assert rig.reader.buffer.max_records == rig.reader.max_buffered_records
    # When more lanes are assigned, up to the worker count can run
    rig.reader.lanes_assigned(["lane-1", "lane-2"])
    assert rig.reader.max_buffered_records == 2 * (3 + 1)
    rig.reader.lanes_assigned(["lane-3", "lane-4", "lane-5"])
    assert rig.reader.max_buffered_records == 2 * (4 + 1)
    # And revoked lanes shrink it again
    rig.reader.lanes_revoked(["lane-1", "lane-2", "lane-3", "lane-4", "lane-5"])
    assert rig.reader.max_buffered_records == 2 * (1 + 1)
