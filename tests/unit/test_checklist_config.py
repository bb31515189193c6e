"""ESM-SPEC §8 checklist, configuration lines 1–10 and 63: one test (at least) per line,
through `esm.config.loading` with the real source connectors (nothing connects at load time)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from esm.config.loading import load_config
from esm.errors import ConfigError
from esm.failures.policy import FailurePolicy
from esm.records import Batch, FunctionError, Record, Retry
from tests.unit.checklist_support import (
    FILE_DESTINATION,
    load_mapping,
    mapping_yaml,
    problems_of,
    write,
)


def _one_problem_mentions(problems: list[str], *words: str) -> bool:
    return any(all(word in p for word in words) for p in problems)


# ---- 1 -----------------------------------------------------------------------------------

@pytest.mark.parametrize("batch_size", [0, 10001, -1])
def test_batch_size_outside_1_to_10000_is_rejected(tmp_path: Path, batch_size: int) -> None:
    """Checklist 1: "Config: reject BatchSize outside 1–10000; SQS FIFO >10; default 10 (SQS)
    / 100 (others)." — the range part."""
    # Given a Kafka mapping (no window rule) with an out-of-range batch size
    # When it is validated
    problems = problems_of(tmp_path, "kafka", f"batch_size: {batch_size}")
    # Then the batch size is named as the problem
    assert _one_problem_mentions(problems, "mappings[0].batch_size")


def test_batch_size_10000_is_the_largest_accepted(tmp_path: Path) -> None:
    """Checklist 1: "Config: reject BatchSize outside 1–10000; ..." — the upper bound itself
    is allowed."""
    mapping = load_mapping(tmp_path, "kafka", "batch_size: 10000")
    assert mapping.batch_size == 10000


def test_sqs_fifo_batch_size_above_10_is_rejected(tmp_path: Path) -> None:
    """Checklist 1: "Config: reject BatchSize outside 1–10000; SQS FIFO >10; ..." — FIFO."""
    # Given an SQS FIFO queue with batch size 11
    problems = problems_of(tmp_path, "sqs_fifo", "batch_size: 11")
    # Then the FIFO limit is reported
    assert _one_problem_mentions(problems, "batch_size", "at most 10 for FIFO")
    # and 10 is fine
    assert problems_of(tmp_path, "sqs_fifo", "batch_size: 10") == []


@pytest.mark.parametrize("source, default", [
    ("sqs", 10), ("kafka", 100), ("dynamodb_streams", 100), ("kinesis", 100)])
def test_default_batch_size_is_10_for_sqs_and_100_for_the_others(
        tmp_path: Path, source: str, default: int) -> None:
    """Checklist 1: "... default 10 (SQS) / 100 (others)."""
    assert load_mapping(tmp_path, source).batch_size == default


# ---- 2 -----------------------------------------------------------------------------------

@pytest.mark.parametrize("window", [-1, 301, 1000])
def test_batching_window_outside_0_to_300_seconds_is_rejected(
        tmp_path: Path, window: int) -> None:
    """Checklist 2: "Config: reject window outside 0–300 s; ..." """
    problems = problems_of(tmp_path, "kafka", f"maximum_batching_window_in_seconds: {window}")
    assert _one_problem_mentions(problems, "maximum_batching_window_in_seconds")
    assert problems_of(tmp_path, "kafka", "maximum_batching_window_in_seconds: 300") == []


@pytest.mark.parametrize("source", ["sqs", "kinesis", "dynamodb_streams"])
def test_batch_size_above_10_with_window_0_gives_the_aws_message(
        tmp_path: Path, source: str) -> None:
    """Checklist 2: "... SQS/Kinesis/DDB BatchSize>10 with window 0 → "Maximum batch window in
    seconds must be greater than 0 if maximum batch size is greater than 10"."""
    # Given batch size 11 and the default window 0
    problems = problems_of(tmp_path, source, "batch_size: 11")
    # Then AWS's own text is reported, and a 1 s window makes it valid
    assert _one_problem_mentions(problems, "Maximum batch window in seconds must be greater "
                                           "than 0 if maximum batch size is greater than 10")
    assert problems_of(tmp_path, source, "batch_size: 11",
                       "maximum_batching_window_in_seconds: 1") == []


def test_kafka_batch_size_above_10_needs_no_window(tmp_path: Path) -> None:
    """Checklist 2: the window rule names SQS/Kinesis/DDB only; Kafka's default window is
    0.5 s and an explicit 0 with a large batch is allowed."""
    assert problems_of(tmp_path, "kafka", "batch_size: 500",
                       "maximum_batching_window_in_seconds: 0") == []


# ---- 3 -----------------------------------------------------------------------------------

@pytest.mark.parametrize("source, window", [
    ("kafka", 0.5), ("sqs", 0.0), ("kinesis", 0.0), ("dynamodb_streams", 0.0)])
def test_default_window_is_half_a_second_for_kafka_and_0_for_the_others(
        tmp_path: Path, source: str, window: float) -> None:
    """Checklist 3: "Config: Kafka default window 0.5 s; others 0." """
    assert load_mapping(tmp_path, source).maximum_batching_window_in_seconds == window


# ---- 4 -----------------------------------------------------------------------------------

@pytest.mark.parametrize("value, ok", [(-2, False), (-1, True), (0, True), (10000, True),
                                       (10001, False)])
def test_maximum_retry_attempts_accepts_minus_1_and_0_to_10000(
        tmp_path: Path, value: int, ok: bool) -> None:
    """Checklist 4: "Config: MaximumRetryAttempts ∈ {-1, 0…10000}; ..." """
    problems = problems_of(tmp_path, "kinesis", f"maximum_retry_attempts: {value}")
    assert (problems == []) is ok
    if not ok:
        assert _one_problem_mentions(problems, "maximum_retry_attempts")


@pytest.mark.parametrize("value, ok", [(-2, False), (-1, True), (0, False), (59, False),
                                       (60, True), (604800, True), (604801, False)])
def test_maximum_record_age_accepts_minus_1_and_60_to_604800(
        tmp_path: Path, value: int, ok: bool) -> None:
    """Checklist 4: "... MaximumRecordAgeInSeconds ∈ {-1, 60…604800}; ..." """
    problems = problems_of(tmp_path, "kinesis", f"maximum_record_age_in_seconds: {value}")
    assert (problems == []) is ok
    if not ok:
        assert _one_problem_mentions(problems, "maximum_record_age_in_seconds")


def test_minus_1_means_infinite_retries_and_age(tmp_path: Path) -> None:
    """Checklist 4: "... -1 = infinite." — the defaults are -1 and a stream source keeps them
    (the policy reads -1 as never give up)."""
    mapping = load_mapping(tmp_path, "kinesis")
    assert (mapping.maximum_retry_attempts, mapping.maximum_record_age_in_seconds) == (-1, -1)
    policy = FailurePolicy.for_mapping(mapping, mapping.source.cls.traits)
    record = Record("s", "1", "1", {}, 10, timestamp=0.0)
    steps = policy.decide(Batch("s", (record,)), FunctionError("E", "m"), attempt=10_000,
                          invoke_count=10_001, now=10.0 ** 9)
    assert isinstance(steps[0], Retry)


# ---- 5 -----------------------------------------------------------------------------------

@pytest.mark.parametrize("factor, ok", [(0, False), (1, True), (10, True), (11, False)])
def test_parallelization_factor_is_1_to_10(tmp_path: Path, factor: int, ok: bool) -> None:
    """Checklist 5: "Config: ParallelizationFactor 1–10 and TumblingWindowInSeconds 0–900 only
    for Kinesis/DDB." — the range."""
    problems = problems_of(tmp_path, "kinesis", f"parallelization_factor: {factor}")
    assert (problems == []) is ok


def test_tumbling_window_above_900_is_rejected(tmp_path: Path) -> None:
    """Checklist 5: "... TumblingWindowInSeconds 0–900 ..." (and 0 is accepted)."""
    problems = problems_of(tmp_path, "kinesis", "tumbling_window_in_seconds: 901")
    assert _one_problem_mentions(problems, "tumbling_window_in_seconds")
    assert problems_of(tmp_path, "kinesis", "tumbling_window_in_seconds: 0") == []


def test_tumbling_windows_are_for_kinesis_and_dynamodb_streams_at_factor_1(
        tmp_path: Path) -> None:
    """Checklist 5 and 63: TumblingWindowInSeconds on Kinesis/DDB; esm keeps one batch per
    shard with windows (the state passes from one invoke of the shard to the next)."""
    assert problems_of(tmp_path, "kinesis", "tumbling_window_in_seconds: 900") == []
    problems = problems_of(tmp_path, "sqs", "tumbling_window_in_seconds: 60")
    assert _one_problem_mentions(problems, "tumbling_window_in_seconds", "applies only")
    problems = problems_of(tmp_path, "kinesis", "tumbling_window_in_seconds: 60",
                           "parallelization_factor: 2")
    assert _one_problem_mentions(problems, "tumbling_window_in_seconds", "parallelization")


def test_kafka_windows_need_a_window_state_store_and_shards_refuse_one(tmp_path: Path) -> None:
    """Beyond AWS: Kafka keeps no window state with its offsets, so the mapping names a
    store; Kinesis and DynamoDB Streams keep it on their lease rows."""
    store = "window_state: {type: sqlite, path: w.sqlite}"
    problems = problems_of(tmp_path, "kafka", "tumbling_window_in_seconds: 60")
    assert _one_problem_mentions(problems, "window_state", "required")
    assert problems_of(tmp_path, "kafka", "tumbling_window_in_seconds: 60", store) == []
    assert _one_problem_mentions(problems_of(tmp_path, "kinesis", "tumbling_window_in_seconds: 60",
                                             store), "window_state", "remove")
    assert _one_problem_mentions(problems_of(tmp_path, "kafka", store), "window_state",
                                 "only used with")
    problems = problems_of(tmp_path, "kafka", "tumbling_window_in_seconds: 60",
                           "window_state: {type: memcache}")
    assert _one_problem_mentions(problems, "window_state.type", "memcache")


def test_parallelization_factor_is_rejected_on_a_queue_source(tmp_path: Path) -> None:
    """Checklist 5: "... ParallelizationFactor ... only for Kinesis/DDB." — SQS."""
    problems = problems_of(tmp_path, "sqs", "parallelization_factor: 2")
    assert _one_problem_mentions(problems, "parallelization_factor", "applies only to stream")


def test_parallelization_factor_on_redis_streams_takes_an_ordering_key_field(
        tmp_path: Path) -> None:
    """Beyond AWS: Redis Streams, a queue source, keeps order per stream and so per key."""
    source = 'source: {type: redis_streams, streams: [orders]%s}'
    problems = problems_of(tmp_path, source % "", "parallelization_factor: 3")
    assert _one_problem_mentions(problems, "source.ordering_key_field")
    assert problems_of(tmp_path, source % ", ordering_key_field: user",
                       "parallelization_factor: 3") == []


@pytest.mark.parametrize("factor, ok", [(0, False), (1, True), (10, True), (11, False)])
def test_parallelization_factor_is_1_to_10_on_a_kafka_source(tmp_path: Path, factor: int,
                                                             ok: bool) -> None:
    """Checklist 5 says Kinesis/DDB only; esm goes beyond AWS: a Kafka record key keeps
    order per key, so Kafka takes the same range (issue: per-key parallelism)."""
    problems = problems_of(tmp_path, "kafka", f"parallelization_factor: {factor}")
    assert (problems == []) is ok
    if not ok:
        assert _one_problem_mentions(problems, "parallelization_factor")


# ---- 6 -----------------------------------------------------------------------------------

@pytest.mark.parametrize("value, ok", [(1, False), (2, True), (1000, True), (1001, False)])
def test_maximum_concurrency_is_2_to_1000(tmp_path: Path, value: int, ok: bool) -> None:
    """Checklist 6: "Config: MaximumConcurrency 2–1000, SQS only, mutually exclusive with
    provisioned mode." — the range. (esm applies it to every source as the mapping's cap
    on concurrent batches, DESIGN §6, so "SQS only" is deliberately not enforced.)"""
    problems = problems_of(tmp_path, "sqs", f"scaling_config: {{maximum_concurrency: {value}}}")
    assert (problems == []) is ok
    if ok:
        mapping = load_mapping(tmp_path, "sqs", f"scaling_config: {{maximum_concurrency: {value}}}")
        assert mapping.maximum_concurrency == value


def test_provisioned_mode_does_not_exist_so_it_cannot_be_combined(tmp_path: Path) -> None:
    """Checklist 6: "... mutually exclusive with provisioned mode." — esm has no provisioned
    mode: the key is unknown and rejected, never silently combined."""
    problems = problems_of(tmp_path, "sqs", "scaling_config: {maximum_concurrency: 5}",
                           "provisioned_poller_config: {minimum_pollers: 2}")
    assert _one_problem_mentions(problems, "provisioned_poller_config")


# ---- 7 -----------------------------------------------------------------------------------

def _filters(count: int, pattern: str = '{"body": {"a": [1]}}') -> str:
    return "filter_criteria: {filters: [" + ", ".join(
        [f"{{pattern: {json.dumps(pattern)}}}"] * count) + "]}"


def test_ten_filters_are_accepted_and_eleven_rejected(tmp_path: Path) -> None:
    """Checklist 7: "Config: ≤5 filters by default (10 max), each pattern ≤4096 chars; ..."
    — esm has no quota to raise, so it allows the 10 maximum."""
    assert len(load_mapping(tmp_path, "sqs", _filters(10)).filter_patterns) == 10
    problems = problems_of(tmp_path, "sqs", _filters(11))
    assert _one_problem_mentions(problems, "filter_criteria.filters", "at most 10")


def test_pattern_longer_than_4096_characters_is_rejected(tmp_path: Path) -> None:
    """Checklist 7: "... each pattern ≤4096 chars; ..." """
    long_value = "x" * 4100
    problems = problems_of(tmp_path, "sqs", _filters(1, f'{{"body": {{"a": ["{long_value}"]}}}}'))
    assert _one_problem_mentions(problems, "filters[0].pattern", "4096")


def test_invalid_pattern_fails_the_whole_mapping_with_the_aws_message(tmp_path: Path) -> None:
    """Checklist 7: "... an invalid pattern fails the whole create/update with "Invalid filter
    pattern definition."." """
    # Given one good and one invalid pattern (a leaf that is not an array)
    text = mapping_yaml("sqs", 'filter_criteria: {filters: [{pattern: \'{"body": {"a": [1]}}\'},'
                               ' {pattern: \'{"body": {"a": 1}}\'}]}')
    # When the config is loaded, Then the whole config is refused, naming the bad pattern
    with pytest.raises(ConfigError) as caught:
        load_config([write(tmp_path, text)], {})
    assert _one_problem_mentions(caught.value.problems, "filters[1].pattern",
                                 "Invalid filter pattern definition")


# ---- 8 -----------------------------------------------------------------------------------

@pytest.mark.parametrize("value, ok", [
    ("[]", True), ("[ReportBatchItemFailures]", True), ("[ReportItemFailures]", False),
    ("[ReportBatchItemFailures, ReportBatchItemFailures]", False)])
def test_function_response_types_accepts_only_report_batch_item_failures_or_nothing(
        tmp_path: Path, value: str, ok: bool) -> None:
    """Checklist 8: "Config: FunctionResponseTypes accepts only `["ReportBatchItemFailures"]`
    or `[]`." """
    problems = problems_of(tmp_path, "kinesis", f"function_response_types: {value}")
    assert (problems == []) is ok
    if not ok:
        assert _one_problem_mentions(problems, "function_response_types")


# ---- 9 -----------------------------------------------------------------------------------

@pytest.mark.parametrize("source_line", [
    'source: {type: kinesis, stream_name: orders}',
    'source: {type: dynamodb_streams, stream_arn: '
    '"arn:aws:dynamodb:us-east-1:000000000000:table/t/stream/2024-01-01"}'])
def test_starting_position_is_required_for_kinesis_and_dynamodb(
        tmp_path: Path, source_line: str) -> None:
    """Checklist 9: "Config: StartingPosition required for Kinesis/DDB; ..." """
    problems = problems_of(tmp_path, source_line)
    assert _one_problem_mentions(problems, "starting_position")


def test_at_timestamp_is_rejected_for_dynamodb_with_the_aws_message(tmp_path: Path) -> None:
    """Checklist 9: "... AT_TIMESTAMP rejected for DDB; ..." """
    arn = "arn:aws:dynamodb:us-east-1:000000000000:table/t/stream/2024-01-01"
    problems = problems_of(tmp_path, f'source: {{type: dynamodb_streams, stream_arn: "{arn}", '
                                     'starting_position: AT_TIMESTAMP}')
    assert _one_problem_mentions(problems, "starting_position",
                                 f"Unsupported starting position for arn type: {arn}")


@pytest.mark.parametrize("source", ["kinesis", "kafka"])
def test_starting_position_timestamp_in_the_future_is_rejected(
        tmp_path: Path, source: str) -> None:
    """Checklist 9: "... timestamp in future rejected." (Kinesis and Kafka take AT_TIMESTAMP)"""
    future, past = int(time.time()) + 3600, int(time.time()) - 3600
    line = {"kinesis": "source: {{type: kinesis, stream_name: orders, starting_position: "
                       "AT_TIMESTAMP, starting_position_timestamp: {}}}",
            "kafka": 'source: {{type: kafka, bootstrap_servers: ["localhost:9092"], topics: '
                     '[orders], consumer_group_id: g, starting_position: AT_TIMESTAMP, '
                     'starting_position_timestamp: {}}}'}[source]
    problems = problems_of(tmp_path, line.format(future))
    assert _one_problem_mentions(problems, "starting_position_timestamp", "future")
    assert problems_of(tmp_path, line.format(past)) == []


# ---- 10 ----------------------------------------------------------------------------------

def test_on_success_destination_is_rejected_with_the_aws_message(tmp_path: Path) -> None:
    """Checklist 10: "Config: OnSuccess destination rejected; OnFailure allowed for
    stream/Kafka sources only." — OnSuccess."""
    problems = problems_of(tmp_path, "kinesis",
                           "destination_config: {on_success: {type: file, path: ok.jsonl}}")
    assert _one_problem_mentions(problems, "on_success", "Unsupported DestinationConfig "
                                 "parameter for given event source mapping type.")


@pytest.mark.parametrize("source", ["kafka", "kinesis", "dynamodb_streams"])
def test_on_failure_destination_is_allowed_for_stream_sources(tmp_path: Path, source: str) -> None:
    """Checklist 10: "... OnFailure allowed for stream/Kafka sources ..." """
    mapping = load_mapping(tmp_path, source, FILE_DESTINATION)
    assert mapping.on_failure is not None and mapping.on_failure.type == "file"


def test_on_failure_destination_is_rejected_for_plain_sqs(tmp_path: Path) -> None:
    """Checklist 10: "... OnFailure allowed for stream/Kafka sources only." — SQS dead-letters
    through the queue's redrive policy; esm takes a destination only together with its
    opt-in `max_receive_count` extension (checklist 39)."""
    problems = problems_of(tmp_path, "sqs", FILE_DESTINATION)
    assert _one_problem_mentions(problems, "destination_config.on_failure", "redrive policy")


# ---- 63 ----------------------------------------------------------------------------------

@pytest.mark.parametrize("source", ["kinesis", "dynamodb_streams"])
def test_tumbling_windows_are_accepted_on_kinesis_and_dynamodb_streams(tmp_path: Path,
                                                                      source: str) -> None:
    """Checklist 63: "Tumbling window: pass state/window/isFinalInvokeForWindow; a response
    without `state` = failure; state >1 MB terminates the window early." — the behaviour
    is proven in tests/unit/test_windows.py; here the key is accepted on both sources."""
    assert problems_of(tmp_path, source, "tumbling_window_in_seconds: 60") == []
