"""esm.failures.responses.interpret: function errors and partial batch responses
(ESM-SPEC §4.1–4.4)."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from esm.failures.responses import INVALID_RESPONSE, interpret
from esm.records import (
    Batch,
    FunctionError,
    FunctionFailed,
    PartialFailure,
    Record,
    Returned,
    Success,
)


def make_batch(*item_ids: str) -> Batch:
    records = tuple(
        Record(lane="lane-0", position=str(i), item_id=item_id, payload={"id": item_id},
               size_bytes=10, timestamp=0.0)
        for i, item_id in enumerate(item_ids)
    )
    return Batch(lane="lane-0", records=records)


def string_identifier(value: object) -> str | None:
    """Like the SQS / Kinesis / Redis sources: only non-empty strings are identifiers."""
    return value if isinstance(value, str) and value else None


def kafka_identifier(value: object) -> str | None:
    """Like the Kafka source: {"partition": "<topic>-<n>", "offset": <int>} → "topic-n@offset"."""
    if not isinstance(value, dict):
        return None
    partition, offset = value.get("partition"), value.get("offset")
    if not isinstance(partition, str) or not isinstance(offset, int) or isinstance(offset, bool):
        return None
    return f"{partition}@{offset}"


def run(result: Returned | FunctionFailed, batch: Batch, *, report: bool = True,
        identifier: Any = string_identifier) -> Any:
    return interpret(result, batch, report_batch_item_failures=report, item_identifier=identifier)


def returned_json(text: str) -> Returned:
    """What a target hands back for a response body `text` (ESM-SPEC §4.2 shapes)."""
    if not text.strip():
        return Returned(payload=None)
    try:
        return Returned(payload=json.loads(text))
    except ValueError:
        return Returned(payload=None, raw=text.encode(), valid_json=False)


# ---- function errors ----------------------------------------------------------------------


@pytest.mark.parametrize("report", [False, True])
def test_function_failed_is_an_unhandled_function_error_either_way(report: bool) -> None:
    # Given a function that raised
    failed = FunctionFailed("ValueError", "bad amount", ("  File x, line 1",))
    # When the result is interpreted
    outcome = run(failed, make_batch("a", "b"), report=report)
    # Then the whole batch failed with functionError Unhandled (§4.1, checklist 38)
    assert outcome == FunctionError("ValueError", "bad amount", "Unhandled")


# ---- reporting off: the response is ignored -----------------------------------------------


@pytest.mark.parametrize("body", [
    '{"batchItemFailures": [{"itemIdentifier": "a"}]}',
    '{"batchItemFailures": [{"itemIdentifier": "not-in-batch"}]}',
    "this is not json",
    '"ok"',
])
def test_response_is_ignored_without_report_batch_item_failures(body: str) -> None:
    # Given a mapping without ReportBatchItemFailures (checklist 50)
    # When the function returns anything at all
    outcome = run(returned_json(body), make_batch("a", "b"), report=False)
    # Then the batch succeeded
    assert outcome == Success()


# ---- reporting on: complete success ---------------------------------------------------------


@pytest.mark.parametrize("body", [
    "", "   ", '""', "[]", "null", "{}",
    '{"batchItemFailures": []}', '{"batchItemFailures": null}',
    '{"statusCode": 200}',
])
def test_empty_shapes_are_complete_success(body: str) -> None:
    # Given each response AWS records as complete success (§4.3, checklist 37, 48)
    # When interpreted with ReportBatchItemFailures
    outcome = run(returned_json(body), make_batch("a", "b"))
    # Then every record succeeded
    assert outcome == Success()


def test_empty_raw_body_marked_invalid_is_still_success() -> None:
    # Given a target that could not parse an empty body
    result = Returned(payload=None, raw=b"", valid_json=False)
    # When interpreted
    outcome = run(result, make_batch("a"))
    # Then an empty response is a complete success (§4.2)
    assert outcome == Success()


def test_zero_and_false_are_not_mistaken_for_empty_responses() -> None:
    # Given responses equal to [] / "" under Python's loose equality
    batch = make_batch("a")
    # When interpreted
    outcomes = [run(Returned(payload=value), batch) for value in (0, False)]
    # Then they are rejected as non-object responses, not read as success
    assert all(isinstance(o, FunctionError) for o in outcomes)


# ---- reporting on: partial failure ----------------------------------------------------------


def test_partial_failure_lists_failed_records_in_batch_order() -> None:
    # Given a batch a..d and a response naming d then b
    batch = make_batch("a", "b", "c", "d")
    body = '{"batchItemFailures": [{"itemIdentifier": "d"}, {"itemIdentifier": "b"}]}'
    # When interpreted
    outcome = run(returned_json(body), batch)
    # Then b and d failed, in batch order (checklist 35, 47)
    assert isinstance(outcome, PartialFailure)
    assert [r.item_id for r in outcome.failed] == ["b", "d"]
    assert outcome.failed[0] is batch.records[1]


def test_duplicate_identifiers_fail_the_record_once() -> None:
    # Given a response naming the same record twice
    body = '{"batchItemFailures": [{"itemIdentifier": "b"}, {"itemIdentifier": "b"}]}'
    # When interpreted
    outcome = run(returned_json(body), make_batch("a", "b"))
    # Then the record is failed once
    assert isinstance(outcome, PartialFailure)
    assert [r.item_id for r in outcome.failed] == ["b"]


def test_every_record_named_is_a_partial_failure_of_all_records() -> None:
    # Given a response naming every record
    body = '{"batchItemFailures": [{"itemIdentifier": "a"}, {"itemIdentifier": "b"}]}'
    # When interpreted
    outcome = run(returned_json(body), make_batch("a", "b"))
    # Then all records are failed, still as a partial response (functionError null)
    assert isinstance(outcome, PartialFailure)
    assert len(outcome.failed) == 2


def test_extra_keys_in_entries_and_response_are_ignored() -> None:
    # Given a response with a tumbling-window state and extra entry keys
    body = '{"state": {"n": 1}, "batchItemFailures": [{"itemIdentifier": "a", "why": "x"}]}'
    # When interpreted
    outcome = run(returned_json(body), make_batch("a", "b"))
    # Then only the identifiers matter
    assert isinstance(outcome, PartialFailure)
    assert [r.item_id for r in outcome.failed] == ["a"]


def test_kafka_object_identifiers_are_normalised_by_the_source() -> None:
    # Given Kafka records and a response with an object identifier (§4.4, checklist 58)
    batch = make_batch("orders-0@15", "orders-0@16", "orders-1@3")
    body = '{"batchItemFailures": [{"itemIdentifier": {"partition": "orders-0", "offset": 16}}]}'
    # When interpreted with the Kafka normaliser
    outcome = run(returned_json(body), batch, identifier=kafka_identifier)
    # Then the matching record failed
    assert isinstance(outcome, PartialFailure)
    assert [r.item_id for r in outcome.failed] == ["orders-0@16"]


# ---- reporting on: complete failure ---------------------------------------------------------


@pytest.mark.parametrize(("body", "reason"), [
    ("{not json", "response is not valid JSON: '{not json'"),
    ('"ok"', "response is a JSON string, expected an object"),
    ("5", "response is a JSON number"),
    ("true", "response is a JSON boolean"),
    ("[1]", "response is a JSON array"),
    ('{"batchItemFailures": "a"}', "batchItemFailures is a JSON string, expected an array"),
    ('{"batchItemFailures": {"itemIdentifier": "a"}}', "batchItemFailures is a JSON object"),
    ('{"batchItemFailures": ["a"]}', "batchItemFailures[0] is a JSON string, expected an object"),
    ('{"batchItemFailures": [{"itemIdentifier": "a"}, null]}',
     "batchItemFailures[1] is a JSON null"),
    ('{"batchItemFailures": [{"itemId": "a"}]}',
     "batchItemFailures[0] has no itemIdentifier key (keys: 'itemId')"),
    ('{"batchItemFailures": [{}]}', "batchItemFailures[0] has no itemIdentifier key (keys: none)"),
    ('{"batchItemFailures": [{"itemIdentifier": null}]}',
     "batchItemFailures[0].itemIdentifier is null"),
    ('{"batchItemFailures": [{"itemIdentifier": ""}]}',
     "batchItemFailures[0].itemIdentifier is empty"),
    ('{"batchItemFailures": [{"itemIdentifier": 123}]}',
     "batchItemFailures[0].itemIdentifier 123 is malformed"),
    ('{"batchItemFailures": [{"itemIdentifier": "a"}, {"itemIdentifier": "abc"}]}',
     "batchItemFailures[1].itemIdentifier 'abc' is not in the batch"),
])
def test_unacceptable_responses_fail_the_whole_batch(body: str, reason: str) -> None:
    # Given a response AWS treats as a complete failure (§4.2, §4.3, checklist 36, 49)
    # When interpreted with ReportBatchItemFailures
    outcome = run(returned_json(body), make_batch("a", "b"))
    # Then the whole batch failed, functionError null, with a message naming the problem
    assert isinstance(outcome, FunctionError)
    assert outcome.error_type == INVALID_RESPONSE
    assert outcome.function_error is None
    assert reason in outcome.error_message


def test_kafka_identifier_for_unknown_offset_fails_the_whole_batch() -> None:
    # Given a Kafka response naming an offset not in the event (§4.4)
    batch = make_batch("orders-0@15")
    body = '{"batchItemFailures": [{"itemIdentifier": {"partition": "orders-0", "offset": 99}}]}'
    # When interpreted
    outcome = run(returned_json(body), batch, identifier=kafka_identifier)
    # Then the whole batch failed and the message shows the identifier
    assert isinstance(outcome, FunctionError)
    assert "'offset': 99" in outcome.error_message
    assert "is not in the batch" in outcome.error_message


def test_long_invalid_responses_are_cut_in_the_message() -> None:
    # Given a megabyte of invalid JSON
    result = Returned(payload=None, raw=b"x" * 1_000_000, valid_json=False)
    # When interpreted
    outcome = run(result, make_batch("a"))
    # Then the message is short
    assert isinstance(outcome, FunctionError)
    assert len(outcome.error_message) < 200
    assert outcome.error_message.endswith("...")


@pytest.mark.parametrize("body", [
    "[" * 1020 + "]" * 1020,  # orjson decodes up to 1024 levels
    '{"batchItemFailures": [{"itemIdentifier": ' + "[" * 1000 + "]" * 1000 + "}]}",
])
def test_a_response_nested_past_the_recursion_limit_fails_the_batch_with_a_short_message(
        body: str) -> None:
    # Given a response nested deeper than Python's recursion limit (repr recursed on it)
    result = Returned(payload=orjson.loads(body))
    # When interpreted / Then it is a complete failure, described in a few characters
    outcome = run(result, make_batch("a"))
    assert isinstance(outcome, FunctionError) and outcome.error_type == INVALID_RESPONSE
    assert len(outcome.error_message) < 200 and "[[[" in outcome.error_message
