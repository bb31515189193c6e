"""Notices: the document written to the on-failure destination for discarded records.

The shape is AWS's invocation record (ESM-SPEC §4.5, checklist 52–54):

    {"requestContext": {"requestId", "functionArn", "condition", "approximateInvokeCount"},
     "responseContext": {"statusCode": 200, "executedVersion": "$LATEST",
                         "functionError": "Unhandled" | null},
     "version": "1.0", "timestamp": "2019-11-14T00:38:06.021Z",
     "<KafkaBatchInfo | KinesisBatchInfo | DDBStreamBatchInfo | ...>": {...}}

`responseContext` is absent for RecordAgeExceeded (recorded AWS behaviour) and whenever the
function never answered (no outcome, an invoke error); it is null for
MaximumPayloadSizeExceeded (ESM-SPEC §4.4). Beyond AWS (DESIGN §7): `payload`, the event
document holding the discarded records (on by default, as AWS does for S3), so that
`esm redrive` can replay them; and `esm`, operator context (mapping, lane, error type and
message). Nothing here does I/O; the destination makes the notice durable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from esm.records import (
    Condition,
    FunctionError,
    InvokeFailure,
    Outcome,
    PartialFailure,
    Record,
    Success,
)

NOTICE_VERSION = "1.0"

# Why a record set was discarded without an outcome to explain it, for `esm.errorMessage`.
_CONDITION_MESSAGES: dict[str, str] = {
    "RecordAgeExceeded": "records were older than maximum_record_age_in_seconds",
    "RetryAttemptsExhausted": "maximum_retry_attempts were used up",
    "MaximumPayloadSizeExceeded": "a record is larger than the 6 MB invoke payload limit",
    "MaxDeliveriesExceeded": "records were delivered max_deliveries times without success",
}


def build_notice(
    *,
    mapping: str,
    function_arn: str,
    condition: Condition,
    outcome: Outcome | None,
    invoke_count: int,
    batch_info_key: str,
    batch_info: Mapping[str, Any],
    records: Sequence[Record],
    event_payload: Mapping[str, Any] | None,
    include_payload: bool,
    now: float,
    request_id: str,
) -> dict[str, Any]:
    """The notice for `records`, discarded with `condition` at epoch second `now`.

    outcome: the last invocation's outcome, None when the records were never invoked.
    invoke_count: `approximateInvokeCount`, invocations of these records (checklist 43).
    batch_info: the source's `<batch_info_key>` object (`Source.batch_info`).
    event_payload: the event document holding `records` (`Source.build_event`); written
        under `payload` when `include_payload` is on.
    """
    notice: dict[str, Any] = {
        "requestContext": {
            "requestId": request_id,
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": invoke_count,
        },
    }
    if _has_response_context(condition, outcome):
        notice["responseContext"] = response_context(outcome)
    notice["version"] = NOTICE_VERSION
    notice["timestamp"] = iso8601_ms(now)
    notice[batch_info_key] = dict(batch_info)
    if include_payload and event_payload is not None:
        notice["payload"] = event_payload
    error_type, error_message = describe(condition, outcome)
    notice["esm"] = {
        "mapping": mapping,
        "lane": records[0].lane if records else None,
        "errorType": error_type,
        "errorMessage": error_message,
    }
    return notice


def _has_response_context(condition: Condition, outcome: Outcome | None) -> bool:
    if condition == "MaximumPayloadSizeExceeded":
        return True  # present, as null (ESM-SPEC §4.4)
    if condition == "RecordAgeExceeded":
        return False  # recorded: no responseContext key (ESM-SPEC §4.3, checklist 45)
    return outcome is not None and not isinstance(outcome, InvokeFailure)


def response_context(outcome: Outcome | None) -> dict[str, Any] | None:
    """AWS's `responseContext` for the function's last answer: statusCode 200 (the invoke
    itself succeeded) and `functionError` "Unhandled" for a function error, null for a
    partial-response failure (checklist 54). None when there was no answer."""
    match outcome:
        case FunctionError():
            function_error = outcome.function_error
        case PartialFailure() | Success():
            function_error = None
        case _:
            return None
    return {"statusCode": 200, "executedVersion": "$LATEST", "functionError": function_error}


def describe(condition: Condition, outcome: Outcome | None) -> tuple[str, str]:
    """(errorType, errorMessage) for operators: the function's own error when there is
    one, else a sentence on why the records were discarded."""
    match outcome:
        case FunctionError():
            return outcome.error_type, outcome.error_message
        case InvokeFailure():
            return "InvokeError", outcome.reason
        case PartialFailure():
            count = len(outcome.failed)
            return "BatchItemFailures", f"the function reported {count} failed record(s)"
    return condition, _CONDITION_MESSAGES.get(condition, condition)


def iso8601_ms(epoch: float) -> str:
    """ISO-8601 UTC with milliseconds and Z: "2019-11-14T00:38:06.021Z" (Kinesis, Kafka
    and notice timestamps, ESM-SPEC §4.5). Rounded to the nearest millisecond."""
    whole, millis = divmod(round(epoch * 1000), 1000)
    return _utc(whole).strftime("%Y-%m-%dT%H:%M:%S") + f".{millis:03d}Z"


def iso8601_s(epoch: float) -> str:
    """ISO-8601 UTC without milliseconds: "2019-11-14T00:13:19Z" (DynamoDB batch info,
    ESM-SPEC §4.5). Truncated to the second, as the record's time had not reached the next."""
    return _utc(int(epoch // 1)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _utc(epoch_seconds: int) -> datetime:
    return datetime.fromtimestamp(epoch_seconds, tz=UTC)
