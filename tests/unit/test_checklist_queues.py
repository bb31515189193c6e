"""ESM-SPEC §8 checklist, queue-family lines 33–38 (SQS rules), on the real reader and lane
worker over the `memory_queue` source, plus the response interpreter `esm.failures.responses`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from esm.errors import InvokeError
from tests.unit.checklist_support import RawTarget, bodies, fail_ids, failing
from tests.unit.runtime_fakes import Rig, ScriptedTarget, mapping_config

RBIF = ("ReportBatchItemFailures",)


def queue_rig(target: ScriptedTarget, report: bool = True) -> Rig:
    mapping = mapping_config("queue", batch_size=3, function_response_types=RBIF if report else ())
    return Rig(mapping, target)


def first_delivery(rig: Rig, *ids: int) -> None:
    """Put the records and run one poll + one invocation (no redelivery yet)."""
    rig.put(*bodies(*ids))
    rig.turn()
    rig.turn()


# ---- 33 ----------------------------------------------------------------------------------

def test_a_successful_invoke_deletes_every_message_of_the_batch() -> None:
    """Checklist 33: "SQS: on a successful invoke, delete every message in the batch." """
    target = ScriptedTarget()
    rig = queue_rig(target, report=False)
    first_delivery(rig, 1, 2, 3)
    assert target.calls == [bodies(1, 2, 3)]
    assert sorted(rig.broker.acked) == ["lane-0:0", "lane-0:1", "lane-0:2"]
    assert rig.metrics.value("deleted") == 3


# ---- 34 ----------------------------------------------------------------------------------

@pytest.mark.parametrize("make_target", [
    lambda: ScriptedTarget(failing()), lambda: RawTarget(b'{"batchItemFailures": [')],
    ids=["function-error", "unparsable-partial-response"])
def test_a_failed_batch_deletes_nothing_and_its_messages_come_back(
        make_target: Callable[[], ScriptedTarget]) -> None:
    """Checklist 34: "SQS: on a function error or unparsable partial response, delete
    nothing; messages reappear after the visibility timeout." — esm hands them back with
    its retry backoff (at most the visibility timeout), so they are delivered again."""
    # Given a batch whose invocation fails
    target = make_target()
    rig = queue_rig(target)
    first_delivery(rig, 1, 2)
    # Then nothing was deleted
    assert rig.broker.acked == []
    assert rig.metrics.value("released") == 2
    # When time passes beyond the visibility timeout, Then the same messages come back
    rig.clock.advance(31)
    rig.turn()
    rig.turn()
    assert target.calls == [bodies(1, 2), bodies(1, 2)]
    assert [m.receive_count for m in rig.broker._queue.values()] == [2, 2]


# ---- 35 ----------------------------------------------------------------------------------

def test_messages_named_in_batch_item_failures_stay_and_the_rest_are_deleted() -> None:
    """Checklist 35: "SQS: messages whose ids appear in batchItemFailures are not deleted;
    the rest are." """
    target = ScriptedTarget(fail_ids(2))
    rig = queue_rig(target)
    first_delivery(rig, 1, 2, 3)
    assert sorted(rig.broker.acked) == ["lane-0:0", "lane-0:2"]
    assert list(rig.broker._queue) == [("lane-0", 1)]
    assert rig.metrics.value("failed_invoke") == 1


# ---- 36 ----------------------------------------------------------------------------------

@pytest.mark.parametrize("response", [
    {"batchItemFailures": [{"itemIdentifier": ""}]},
    {"batchItemFailures": [{"itemIdentifier": None}]},
    {"batchItemFailures": [{"itemId": "lane-0:1"}]},
    {"batchItemFailures": [{"itemIdentifier": "lane-0:99"}]},
    {"batchItemFailures": [{"itemIdentifier": "lane-0:1"}, {"itemIdentifier": "nope"}]},
], ids=["empty-id", "null-id", "wrong-key", "unknown-id", "one-good-one-unknown"])
def test_a_malformed_batch_item_failure_is_a_total_failure(response: dict[str, Any]) -> None:
    """Checklist 36: "SQS: batchItemFailures with an empty/null itemIdentifier, wrong key, or
    unknown messageId → treat as total failure (delete none)." """
    target = ScriptedTarget(lambda records: response)
    rig = queue_rig(target)
    first_delivery(rig, 1, 2, 3)
    assert rig.broker.acked == []
    assert rig.metrics.value("released") == 3
    assert rig.metrics.value("failed_invoke") == 3


# ---- 37 ----------------------------------------------------------------------------------

@pytest.mark.parametrize("raw", [
    b'{"batchItemFailures": []}', b'{"batchItemFailures": null}', b"{}", b"null", b""],
    ids=["empty-list", "null-list", "empty-object", "null", "empty-body"])
def test_an_empty_partial_response_is_total_success(raw: bytes) -> None:
    """Checklist 37: "SQS: empty list, null list, {} or null response → total success." """
    target = RawTarget(raw)
    rig = queue_rig(target)
    first_delivery(rig, 1, 2)
    assert sorted(rig.broker.acked) == ["lane-0:0", "lane-0:1"]
    assert rig.metrics.value("released") == 0


# ---- 38 ----------------------------------------------------------------------------------

def test_a_handler_exception_is_a_total_failure_even_with_report_batch_item_failures() -> None:
    """Checklist 38: "SQS: a handler exception with ReportBatchItemFailures on → total
    failure." """
    target = ScriptedTarget(failing("handler blew up"))
    rig = queue_rig(target, report=True)
    first_delivery(rig, 1, 2, 3)
    assert rig.broker.acked == []
    assert rig.metrics.value("released") == 3
    assert rig.metrics.value("function_errors") == 1


def test_an_invoke_error_deletes_nothing_either() -> None:
    """Checklist 34/38: a batch that never reached the function (throttle, 503) is not a
    success either: nothing is deleted and the messages are handed back."""
    def throttled(records: list[dict[str, Any]]) -> Any:
        raise InvokeError("429 Too Many Requests")
    rig = queue_rig(ScriptedTarget(throttled))
    first_delivery(rig, 1, 2)
    assert rig.broker.acked == []
    assert rig.metrics.value("invoke_errors") == 1
