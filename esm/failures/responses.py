"""What a target's answer means for the batch: the AWS rules for function errors and
partial batch responses (`ReportBatchItemFailures`), as one pure function.

    interpret(result, batch, report_batch_item_failures=..., item_identifier=...) -> Outcome

- `FunctionFailed` → `FunctionError(..., function_error="Unhandled")` (ESM-SPEC §4.1; a
  thrown exception is a whole-batch failure even with ReportBatchItemFailures, §4.2).
- `Returned` without ReportBatchItemFailures → `Success`: the response is ignored (§4.3,
  checklist 50).
- `Returned` with it:
  - complete success for `""`, `[]`, `null`, `{}`, an empty body, `{"batchItemFailures": []}`
    and `{"batchItemFailures": null}` (§4.2, §4.3, checklist 37 and 48; Kafka §4.4);
  - `PartialFailure` naming the failed records in batch order (checklist 35, 47, 58);
  - otherwise a complete failure, `FunctionError(function_error=None)` (the destination
    record's `functionError` is null for rejected partial responses, §4.1): invalid JSON,
    `batchItemFailures` not a list, an entry not an object, a missing `itemIdentifier` key
    (wrong key name), an identifier that is null, empty, malformed or not in the batch
    (checklist 36, 49, 58).

Beyond AWS's documented cases, a non-empty JSON value that is not an object (`"ok"`, `5`,
`[1]`, `true`) is also a complete failure: the records are retried rather than acked on a
response esm cannot read, because a retry can be undone and a lost record cannot.

Identifiers are normalised by the source (`Source.item_identifier`: a Kafka identifier is
an object, the others strings) and compared with `Record.item_id`. A record named twice
is simply failed once.
"""

from __future__ import annotations

import reprlib
from collections.abc import Callable, Mapping
from typing import Any

from esm.records import (
    Batch,
    FunctionError,
    FunctionFailed,
    Outcome,
    PartialFailure,
    Returned,
    Success,
)

INVALID_RESPONSE = "InvalidBatchItemFailures"
"""`FunctionError.error_type` for a partial batch response that could not be accepted."""

ItemIdentifier = Callable[[object], "str | None"]

_EMPTY_RESPONSES: tuple[Any, ...] = (None, "", [], {})
_EXCERPT_CHARS = 80
_SHORT_REPR = reprlib.Repr()  # only the first levels and items of a value (`_excerpt`)
_SHORT_REPR.maxlevel = 8
_SHORT_REPR.maxstring = _SHORT_REPR.maxother = _SHORT_REPR.maxlong = 2 * _EXCERPT_CHARS


class _Rejected(Exception):
    """A partial batch response that fails the whole batch; the message says why."""


def interpret(
    result: Returned | FunctionFailed,
    batch: Batch,
    *,
    report_batch_item_failures: bool,
    item_identifier: ItemIdentifier,
) -> Outcome:
    """The outcome of one invocation of `batch` (rules in the module docstring)."""
    match result:
        case FunctionFailed(error_type=error_type, error_message=message):
            return FunctionError(error_type, message, "Unhandled")
        case Returned() if not report_batch_item_failures:
            return Success()
        case Returned(payload=payload, raw=raw, valid_json=valid_json):
            try:
                if not valid_json:
                    return _from_invalid_json(raw)
                return _from_payload(payload, batch, item_identifier)
            except _Rejected as exc:
                return FunctionError(INVALID_RESPONSE, str(exc), None)
    raise TypeError(f"interpret: expected Returned or FunctionFailed, got {result!r}")


def _from_invalid_json(raw: bytes | None) -> Outcome:
    # An empty body is "no response", which AWS counts as complete success (§4.2).
    if raw is None or not raw.strip():
        return Success()
    raise _Rejected(f"response is not valid JSON: {_excerpt(raw)}")


def _from_payload(payload: Any, batch: Batch, item_identifier: ItemIdentifier) -> Outcome:
    if _is_empty(payload):
        return Success()
    if not isinstance(payload, Mapping):
        raise _Rejected(
            f"response is a JSON {_json_type(payload)}, expected an object with "
            f"batchItemFailures: {_excerpt(payload)}"
        )
    failures = payload.get("batchItemFailures")
    if failures is None or failures == []:
        return Success()
    if not isinstance(failures, list):
        raise _Rejected(f"batchItemFailures is a JSON {_json_type(failures)}, expected an array")
    failed_ids = _failed_ids(failures, batch, item_identifier)
    return PartialFailure(tuple(r for r in batch.records if r.item_id in failed_ids))


def _failed_ids(failures: list[Any], batch: Batch, item_identifier: ItemIdentifier) -> set[str]:
    """The normalised identifiers named by `failures`; _Rejected on the first bad entry."""
    in_batch = {r.item_id for r in batch.records}
    failed: set[str] = set()
    for index, entry in enumerate(failures):
        where = f"batchItemFailures[{index}]"
        if not isinstance(entry, Mapping):
            raise _Rejected(f"{where} is a JSON {_json_type(entry)}, expected an object")
        if "itemIdentifier" not in entry:
            keys = ", ".join(repr(k) for k in entry) or "none"
            raise _Rejected(f"{where} has no itemIdentifier key (keys: {keys})")
        value = entry["itemIdentifier"]
        if value is None or value == "":
            raise _Rejected(f"{where}.itemIdentifier is {'null' if value is None else 'empty'}")
        item_id = item_identifier(value)
        if item_id is None:
            raise _Rejected(f"{where}.itemIdentifier {_excerpt(value)} is malformed")
        if item_id not in in_batch:
            raise _Rejected(f"{where}.itemIdentifier {_excerpt(value)} is not in the batch")
        failed.add(item_id)
    return failed


def _is_empty(payload: Any) -> bool:
    # `==` against the empty values would make 0 and False equal to them; compare by type.
    return any(type(payload) is type(empty) and payload == empty for empty in _EMPTY_RESPONSES)


def _json_type(value: Any) -> str:
    match value:
        case bool():
            return "boolean"
        case int() | float():
            return "number"
        case str():
            return "string"
        case list() | tuple():
            return "array"
        case Mapping():
            return "object"
        case None:
            return "null"
    return type(value).__name__


def _excerpt(value: Any) -> str:
    """A short repr for error messages; record bodies and responses can be megabytes, and
    nested deeper than repr can recurse (orjson decodes 1024 levels), so only the first
    levels and items are shown."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = _SHORT_REPR.repr(value)
    if len(text) > _EXCERPT_CHARS:
        return text[: _EXCERPT_CHARS - 3] + "..."
    return text
