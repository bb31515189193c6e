"""ESM-SPEC §8 checklist, stream-family lines 42–54 and Kafka lines 56–57, on the real
reader, lane worker, failure policy and dead-letterer over the memory stream source."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from esm.config.types import ConnectorSpec
from esm.errors import InvokeError
from esm.failures.notices import iso8601_ms, iso8601_s
from esm.failures.policy import FailurePolicy
from tests.unit.checklist_support import (
    KafkaLikeMemorySource,
    PositionProbe,
    RawTarget,
    bodies,
    fail_ids,
    failing,
    fails_first,
    first_call,
    ids_of,
)
from tests.unit.runtime_fakes import ListDestination, Rig, ScriptedTarget, mapping_config

RBIF = ("ReportBatchItemFailures",)


def probed_rig(probe: PositionProbe, destination: ListDestination | None = None,
               **overrides: Any) -> Rig:
    rig = Rig(mapping_config(**overrides), ScriptedTarget(probe), destination)
    probe.rig = rig
    return rig


def calls_as_ids(rig: Rig) -> list[list[int]]:
    return [[json.loads(b)["id"] for b in call] for call in rig.target.calls]


# ---- 42 ----------------------------------------------------------------------------------

def test_a_function_error_retries_the_same_batch_and_holds_the_lane() -> None:
    """Checklist 42: "Streams: a function error retries the same batch; the shard does not
    advance until success, MaxRetry or MaxRecordAge." """
    # Given a target that fails twice, then succeeds
    probe = PositionProbe(fails_first(2))
    rig = probed_rig(probe, batch_size=2)
    rig.put(*bodies(1, 2, 3))
    # When the lane runs
    rig.run_until_quiet()
    # Then the same batch was invoked three times before the next one, with nothing
    # committed while it was failing
    assert calls_as_ids(rig) == [[1, 2], [1, 2], [1, 2], [3]]
    assert probe.committed_at_call == [0, 0, 0, 2]
    assert rig.broker.committed("lane-0") == 3


# ---- 43 ----------------------------------------------------------------------------------

@pytest.mark.parametrize("retries", [0, 1, 2, 5])
def test_maximum_retry_attempts_n_means_n_plus_1_invocations(retries: int) -> None:
    """Checklist 43: "Streams: MaximumRetryAttempts=N ⇒ at most N+1 invocations of a given
    record set; approximateInvokeCount reports attempts." """
    destination = ListDestination()
    rig = Rig(mapping_config(maximum_retry_attempts=retries), ScriptedTarget(failing()),
              destination)
    rig.put(*bodies(1, 2))
    rig.run_until_quiet()
    assert len(rig.target.calls) == retries + 1
    notice = destination.notices[0]
    assert notice["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert notice["requestContext"]["approximateInvokeCount"] == retries + 1


# ---- 44 ----------------------------------------------------------------------------------

def test_invoke_errors_and_throttles_do_not_use_up_retries() -> None:
    """Checklist 44: "Streams: throttles/invoke errors do not consume MaximumRetryAttempts." """
    # Given 1 retry allowed and a target that is throttled 4 times, then fails in the function
    calls: list[int] = []

    def behaviour(records: list[dict[str, Any]]) -> Any:
        calls.append(1)
        if len(calls) <= 4:
            raise InvokeError("429 throttled")
        raise ValueError("function error")
    destination = ListDestination()
    rig = Rig(mapping_config(maximum_retry_attempts=1), ScriptedTarget(behaviour), destination)
    rig.put(*bodies(1))
    # When it runs
    rig.run_until_quiet()
    # Then the 4 throttles were free and the function still got its 1 + 1 attempts
    assert len(calls) == 6
    assert destination.notices[0]["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert rig.metrics.value("invoke_errors") == 4


# ---- 45 ----------------------------------------------------------------------------------

def test_records_older_than_maximum_age_are_discarded_before_invoke() -> None:
    """Checklist 45: "Streams: records older than MaximumRecordAgeInSeconds are discarded
    before invoke with condition RecordAgeExceeded (no responseContext)." """
    destination = ListDestination()
    rig = Rig(mapping_config(maximum_record_age_in_seconds=60), ScriptedTarget(), destination)
    rig.put(*bodies(1, 2))
    rig.clock.advance(61)
    rig.put(*bodies(3))
    rig.run_until_quiet()
    assert rig.target.invoked_bodies() == bodies(3)
    notice = destination.notices[0]
    assert destination.dead_bodies() == bodies(1, 2)
    assert notice["requestContext"]["condition"] == "RecordAgeExceeded"
    assert notice["requestContext"]["approximateInvokeCount"] == 0
    assert "responseContext" not in notice


# ---- 46 ----------------------------------------------------------------------------------

def test_bisection_splits_recursively_and_splits_use_no_retries() -> None:
    """Checklist 46: "Streams: BisectBatchOnFunctionError splits a failed batch in half
    recursively; splits do not count as retries." """
    # Given no retries at all, bisection on, and a poison record in a batch of 8
    def poison(records: list[dict[str, Any]]) -> Any:
        if 6 in ids_of(records):
            raise ValueError("poison")
    destination = ListDestination()
    mapping = mapping_config(batch_size=8, maximum_retry_attempts=0,
                             bisect_batch_on_function_error=True)
    rig = Rig(mapping, ScriptedTarget(poison), destination)
    rig.put(*bodies(*range(8)))
    # When it runs
    rig.run_until_quiet()
    # Then halving went 8 → 4 → 2 → 1 although no retry was allowed
    assert [len(c) for c in rig.target.calls] == [8, 4, 4, 2, 2, 1, 1]
    assert destination.dead_bodies() == bodies(6)
    assert rig.broker.committed("lane-0") == 8


# ---- 47 ----------------------------------------------------------------------------------

def test_a_partial_response_checkpoints_at_the_lowest_failed_record() -> None:
    """Checklist 47: "Streams partial response: checkpoint at the lowest failed sequence
    number; retry from that record onward only." """
    # Given a target that reports ids 3 and 1 failed the first time (not in order)
    probe = PositionProbe(first_call(lambda records: {"batchItemFailures": [
        {"itemIdentifier": records[3]["messageId"]},
        {"itemIdentifier": records[1]["messageId"]}]}))
    rig = probed_rig(probe, batch_size=5, function_response_types=RBIF)
    rig.put(*bodies(0, 1, 2, 3, 4))
    # When it runs
    rig.run_until_quiet()
    # Then record 0 was committed before the retry, which started at record 1
    assert calls_as_ids(rig) == [[0, 1, 2, 3, 4], [1, 2, 3, 4]]
    assert probe.committed_at_call == [0, 1]
    assert rig.broker.committed("lane-0") == 5


# ---- 48 ----------------------------------------------------------------------------------

@pytest.mark.parametrize("raw", [
    b'""', b"[]", b"null", b"{}", b"", b'{"batchItemFailures": []}',
    b'{"batchItemFailures": null}'])
def test_empty_partial_responses_are_success_on_a_stream(raw: bytes) -> None:
    """Checklist 48: "Streams partial response: "" / [] / null / {} / empty or null
    batchItemFailures = success." """
    rig = Rig(mapping_config(function_response_types=RBIF), RawTarget(raw))
    rig.put(*bodies(1, 2))
    rig.run_until_quiet()
    assert len(rig.target.calls) == 1
    assert rig.broker.committed("lane-0") == 2


# ---- 49 ----------------------------------------------------------------------------------

@pytest.mark.parametrize("response", [
    {"batchItemFailures": [{"itemIdentifier": ""}]},
    {"batchItemFailures": [{"itemIdentifier": None}]},
    {"batchItemFailures": [{"identifier": "lane-0:1"}]},
    {"batchItemFailures": [{"itemIdentifier": "123"}]},
], ids=["empty-id", "null-id", "wrong-key", "not-in-batch"])
def test_a_malformed_partial_response_fails_the_whole_batch(response: dict[str, Any]) -> None:
    """Checklist 49: "Streams partial response: empty/null itemIdentifier, wrong key, or an
    identifier not in the batch = whole-batch failure." """
    destination = ListDestination()
    mapping = mapping_config(function_response_types=RBIF, maximum_retry_attempts=1)
    rig = Rig(mapping, ScriptedTarget(lambda records: response), destination)
    rig.put(*bodies(1, 2, 3))
    rig.run_until_quiet()
    # the whole batch was retried and then discarded, nothing acked on the bad answer
    assert calls_as_ids(rig) == [[1, 2, 3], [1, 2, 3]]
    assert destination.dead_bodies() == bodies(1, 2, 3)


# ---- 50 ----------------------------------------------------------------------------------

def test_partial_responses_are_ignored_without_report_batch_item_failures() -> None:
    """Checklist 50: "Streams: partial responses are ignored unless ReportBatchItemFailures
    is enabled." """
    rig = Rig(mapping_config(function_response_types=()), ScriptedTarget(fail_ids(2)))
    rig.put(*bodies(1, 2, 3))
    rig.run_until_quiet()
    assert calls_as_ids(rig) == [[1, 2, 3]]
    assert rig.broker.committed("lane-0") == 3
    assert rig.metrics.value("failed_invoke") == 0


# ---- 51 ----------------------------------------------------------------------------------

def test_with_bisect_a_partial_response_retries_from_the_returned_record_without_splitting(
) -> None:
    """Checklist 51: "Streams: with bisect + ReportBatchItemFailures, a partial response
    retries only records from the returned sequence number on." """
    mapping = mapping_config(batch_size=4, function_response_types=RBIF,
                             bisect_batch_on_function_error=True)
    rig = Rig(mapping, ScriptedTarget(first_call(fail_ids(2))))
    rig.put(*bodies(0, 1, 2, 3))
    rig.run_until_quiet()
    assert calls_as_ids(rig) == [[0, 1, 2, 3], [2, 3]]
    assert rig.metrics.value("bisections") == 0


# ---- 52 ----------------------------------------------------------------------------------

def test_a_discarded_batch_is_sent_to_on_failure_then_the_lane_continues() -> None:
    """Checklist 52: "Streams: on discard, send the invocation record
    (requestContext/responseContext/version/timestamp/KinesisBatchInfo|DDBStreamBatchInfo)
    to OnFailure, then continue." — the batch-info key is the source's (`MemoryBatchInfo`
    for the memory source)."""
    def poison(records: list[dict[str, Any]]) -> Any:
        if 1 in ids_of(records):
            raise ValueError("poison")
    destination = ListDestination()
    rig = Rig(mapping_config(batch_size=2, maximum_retry_attempts=0), ScriptedTarget(poison),
              destination)
    rig.put(*bodies(1, 2, 3, 4))
    rig.run_until_quiet()
    notice = destination.notices[0]
    assert {"requestContext", "responseContext", "version", "timestamp",
            "MemoryBatchInfo"} <= set(notice)
    assert notice["version"] == "1.0"
    assert notice["timestamp"] == iso8601_ms(rig.clock.now())
    # and the lane went on to the next batch, committing past the discarded one
    assert calls_as_ids(rig) == [[1, 2], [3, 4]]
    assert rig.broker.committed("lane-0") == 4


# ---- 53 ----------------------------------------------------------------------------------

def test_the_notice_names_the_first_and_last_record_and_the_count() -> None:
    """Checklist 53: "Destination record: start/endSequenceNumber = first/last record of the
    discarded batch; batchSize = count; approximateArrivalOf* in ISO-8601 UTC." — batch
    info comes from the source; here the memory source's, and the core's ISO formats."""
    destination = ListDestination()
    rig = Rig(mapping_config(batch_size=3, maximum_retry_attempts=0),
              ScriptedTarget(failing()), destination)
    rig.put(*bodies(7, 8, 9, 10))
    rig.run_until_quiet()
    first = destination.notices[0]["MemoryBatchInfo"]
    assert (first["startSequenceNumber"], first["endSequenceNumber"]) == ("0", "2")
    assert first["batchSize"] == 3
    assert destination.notices[1]["MemoryBatchInfo"]["batchSize"] == 1
    # the formats sources use for approximateArrivalOf* (Kinesis ms, DynamoDB seconds)
    assert iso8601_ms(1573691886.021) == "2019-11-14T00:38:06.021Z"
    assert iso8601_s(1573690399.9) == "2019-11-14T00:13:19Z"


# ---- 54 ----------------------------------------------------------------------------------

def test_function_error_is_unhandled_and_partial_failure_is_null_with_status_200() -> None:
    """Checklist 54: "Destination record: functionError "Unhandled" for exceptions, null for
    partial-response failures; statusCode 200." """
    def run(behaviour: Any) -> dict[str, Any]:
        destination = ListDestination()
        mapping = mapping_config(maximum_retry_attempts=0, function_response_types=RBIF)
        rig = Rig(mapping, ScriptedTarget(behaviour), destination)
        rig.put(*bodies(1, 2))
        rig.run_until_quiet()
        return destination.notices[-1]["responseContext"]

    assert run(failing()) == {"statusCode": 200, "executedVersion": "$LATEST",
                              "functionError": "Unhandled"}
    assert run(fail_ids(1)) == {"statusCode": 200, "executedVersion": "$LATEST",
                                "functionError": None}


# ---- 56 ----------------------------------------------------------------------------------

def test_offsets_are_committed_only_after_a_successful_invoke_covering_filtered_records(
) -> None:
    """Checklist 56: "Kafka: commit offsets only after a successful invoke (covering
    filtered-out records too)." — the reader's in-order commit (esm.pipeline.positions)."""
    # Given a matching record followed by two that the filter drops, and a target that fails
    # once before succeeding
    probe = PositionProbe(fails_first(1))
    rig = probed_rig(probe, filter_patterns=('{"body": {"keep": [true]}}',))
    rig.put({"keep": True}, {"keep": False}, {"keep": False})
    # When the reader polls (the batch is not run yet)
    rig.turn(run_workers=False)
    # Then the filtered records are not committed past the unfinished one
    assert rig.broker.committed("lane-0") == 0
    # When the batch fails once and then succeeds
    rig.run_until_quiet()
    # Then nothing was committed during the failure, and everything after the success
    assert probe.committed_at_call == [0, 0]
    assert rig.broker.committed("lane-0") == 3


# ---- 57 ----------------------------------------------------------------------------------

def test_kafka_infinite_retries_with_a_destination_stop_after_10_retries() -> None:
    """Checklist 57: "Kafka: a failed batch is retried (infinite by default); infinite
    retries + destination → capped at 10." — through `FailurePolicy.for_mapping` on a
    source with Kafka's traits."""
    destination = ListDestination()
    mapping = mapping_config(on_failure=ConnectorSpec("file", object, None))
    mapping = replace(mapping, source=replace(mapping.source, cls=KafkaLikeMemorySource))
    rig = Rig(mapping, ScriptedTarget(failing()), destination)
    rig.put(*bodies(1))
    rig.run_until_quiet()
    assert len(rig.target.calls) == 11
    assert destination.notices[0]["requestContext"]["approximateInvokeCount"] == 11


def test_kafka_retries_stay_infinite_without_a_destination() -> None:
    """Checklist 57: "Kafka: a failed batch is retried (infinite by default); ..." """
    traits = KafkaLikeMemorySource.traits
    uncapped = FailurePolicy.for_mapping(mapping_config(), traits)
    explicit = FailurePolicy.for_mapping(
        mapping_config(maximum_retry_attempts=3, on_failure=ConnectorSpec("file", object, None)),
        traits)
    assert uncapped.maximum_retry_attempts == -1
    assert explicit.maximum_retry_attempts == 3
