"""esm.failures.notices: AWS's invocation-record format (ESM-SPEC §4.5, checklist 52–54) plus esm's
`payload` and `esm` blocks."""

from __future__ import annotations

from typing import Any

import pytest

from esm.failures.notices import build_notice, iso8601_ms, iso8601_s
from esm.records import (
    Condition,
    FunctionError,
    InvokeFailure,
    Outcome,
    PartialFailure,
    Record,
)

ARN = "arn:aws:lambda:us-east-2:123456789012:function:myfunction"
BATCH_INFO = {"shardId": "shardId-000000000001", "batchSize": 2}
EVENT = {"Records": [{"n": 0}, {"n": 1}]}
RECORDS = tuple(
    Record(lane="shardId-000000000001", position=str(i), item_id=str(i), payload={"n": i},
           size_bytes=8, timestamp=1_573_692_000.0)
    for i in range(2)
)
NOW = 1_573_692_006.021  # 2019-11-14T00:40:06.021Z


def notice(condition: Condition = "RetryAttemptsExhausted", outcome: Outcome | None = None,
           **overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "mapping": "orders", "function_arn": ARN, "condition": condition, "outcome": outcome,
        "invoke_count": 3, "batch_info_key": "KinesisBatchInfo", "batch_info": BATCH_INFO,
        "records": RECORDS, "event_payload": EVENT, "include_payload": True, "now": NOW,
        "request_id": "c9b8fa9f-5a7f-xmpl-af9c-0c604cde93a5",
    }
    fields.update(overrides)
    return build_notice(**fields)


def test_function_error_notice_has_the_aws_invocation_record_shape() -> None:
    # Given retries exhausted after a function error
    doc = notice("RetryAttemptsExhausted", FunctionError("ValueError", "bad order"))
    # Then the AWS keys carry AWS's values (ESM-SPEC §4.5)
    assert doc["requestContext"] == {
        "requestId": "c9b8fa9f-5a7f-xmpl-af9c-0c604cde93a5", "functionArn": ARN,
        "condition": "RetryAttemptsExhausted", "approximateInvokeCount": 3,
    }
    assert doc["responseContext"] == {
        "statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"}
    assert doc["version"] == "1.0"
    assert doc["timestamp"] == "2019-11-14T00:40:06.021Z"
    assert doc["KinesisBatchInfo"] == BATCH_INFO
    # And esm's own blocks follow
    assert doc["payload"] == EVENT
    assert doc["esm"] == {"mapping": "orders", "lane": "shardId-000000000001",
                          "errorType": "ValueError", "errorMessage": "bad order"}


def test_partial_failure_notice_reports_a_null_function_error() -> None:
    doc = notice("RetryAttemptsExhausted", PartialFailure(RECORDS[1:]))
    assert doc["responseContext"]["functionError"] is None  # checklist 54
    assert doc["responseContext"]["statusCode"] == 200
    assert doc["esm"]["errorType"] == "BatchItemFailures"


def test_function_error_kind_from_the_outcome_is_reported_as_is() -> None:
    doc = notice(outcome=FunctionError("Invalid", "unparsable response", function_error=None))
    assert doc["responseContext"]["functionError"] is None


@pytest.mark.parametrize("outcome", [None, FunctionError("E", "m"), InvokeFailure("throttled")])
def test_record_age_exceeded_notice_has_no_response_context(outcome: Outcome | None) -> None:
    # Recorded AWS behaviour: no responseContext key at all (checklist 45)
    assert "responseContext" not in notice("RecordAgeExceeded", outcome)


def test_maximum_payload_size_exceeded_notice_has_a_null_response_context() -> None:
    doc = notice("MaximumPayloadSizeExceeded", None)
    assert "responseContext" in doc and doc["responseContext"] is None  # ESM-SPEC §4.4


def test_notice_after_an_invoke_error_has_no_response_context() -> None:
    # The function never answered, so there is no response to describe
    doc = notice("MaxDeliveriesExceeded", InvokeFailure("connect refused"))
    assert "responseContext" not in doc
    assert doc["esm"]["errorType"] == "InvokeError"
    assert doc["esm"]["errorMessage"] == "connect refused"


@pytest.mark.parametrize(
    ("condition", "words"),
    [("RecordAgeExceeded", "maximum_record_age_in_seconds"),
     ("MaxDeliveriesExceeded", "max_deliveries"),
     ("MaximumPayloadSizeExceeded", "6 MB")],
)
def test_never_invoked_records_explain_the_condition(condition: Condition, words: str) -> None:
    doc = notice(condition, None)
    assert doc["esm"]["errorType"] == condition
    assert words in doc["esm"]["errorMessage"]


def test_payload_is_left_out_when_include_payload_is_off() -> None:
    assert "payload" not in notice(include_payload=False)
    assert "payload" not in notice(event_payload=None)


def test_batch_info_goes_under_the_source_key_as_a_copy() -> None:
    info = {"batchSize": 1}
    doc = notice(batch_info_key="KafkaBatchInfo", batch_info=info)
    assert doc["KafkaBatchInfo"] == info and doc["KafkaBatchInfo"] is not info
    assert "KinesisBatchInfo" not in doc


def test_lane_is_null_when_no_records_are_given() -> None:
    assert notice(records=())["esm"]["lane"] is None


@pytest.mark.parametrize(
    ("epoch", "expected"),
    [
        (0.0, "1970-01-01T00:00:00.000Z"),
        (1_573_692_004.835, "2019-11-14T00:40:04.835Z"),
        (1_573_692_004.9996, "2019-11-14T00:40:05.000Z"),  # rounds up into the next second
        (1_545_084_650.987, "2018-12-17T22:10:50.987Z"),
    ],
)
def test_iso8601_ms_is_utc_with_milliseconds_and_z(epoch: float, expected: str) -> None:
    assert iso8601_ms(epoch) == expected


@pytest.mark.parametrize(
    ("epoch", "expected"),
    [(1_573_690_399.0, "2019-11-14T00:13:19Z"), (1_573_690_399.999, "2019-11-14T00:13:19Z")],
)
def test_iso8601_s_has_no_milliseconds_for_dynamodb(epoch: float, expected: str) -> None:
    assert iso8601_s(epoch) == expected
