"""ESM-SPEC §8 checklist, metrics lines 66–67 (on the real reader and lane worker) and the
idempotency line 69 (the README)."""

from __future__ import annotations

import re
from pathlib import Path

from tests.unit.checklist_support import bodies, fail_ids, failing, fails_first
from tests.unit.runtime_fakes import ListDestination, Rig, ScriptedTarget, mapping_config

README = Path(__file__).resolve().parents[2] / "README.md"


# ---- 66 ----------------------------------------------------------------------------------

def test_polled_count_is_zero_after_empty_polls_and_counts_every_record_read() -> None:
    """Checklist 66: "Metrics: PolledEventCount (0 on empty poll), FilteredOutEventCount,
    InvokedEventCount (counts retries), FailedInvokeEventCount (incl. partial failures)." —
    PolledEventCount."""
    rig = Rig(mapping_config(), ScriptedTarget())
    for _ in range(3):
        rig.turn()
    assert rig.metrics.value("polled") == 0
    rig.put(*bodies(1, 2, 3, 4))
    rig.run_until_quiet()
    assert rig.metrics.value("polled") == 4


def test_filtered_out_count_counts_only_records_the_filter_removed() -> None:
    """Checklist 66: "... FilteredOutEventCount ..." """
    rig = Rig(mapping_config(filter_patterns=('{"body": {"id": [1, 3]}}',)), ScriptedTarget())
    rig.put(*bodies(1, 2, 3, 4, 5))
    rig.run_until_quiet()
    assert rig.metrics.value("filtered_out") == 3
    assert rig.metrics.value("invoked") == 2


def test_invoked_count_counts_records_again_on_every_retry() -> None:
    """Checklist 66: "... InvokedEventCount (counts retries) ..." """
    rig = Rig(mapping_config(batch_size=3), ScriptedTarget(fails_first(2)))
    rig.put(*bodies(1, 2, 3))
    rig.run_until_quiet()
    assert rig.metrics.value("invoked") == 9  # 3 records × 3 invocations
    assert rig.metrics.value("failed_invoke") == 6


def test_failed_invoke_count_includes_records_named_in_a_partial_failure() -> None:
    """Checklist 66: "... FailedInvokeEventCount (incl. partial failures)." """
    rig = Rig(mapping_config("queue", batch_size=3,
                             function_response_types=("ReportBatchItemFailures",)),
              ScriptedTarget(fail_ids(1, 3)))
    rig.put(*bodies(1, 2, 3))
    rig.turn()
    rig.turn()
    assert rig.metrics.value("failed_invoke") == 2
    assert rig.metrics.value("invoked") == 3


# ---- 67 ----------------------------------------------------------------------------------

def test_dropped_count_excludes_records_delivered_to_the_destination() -> None:
    """Checklist 67: "Metrics: DroppedEventCount excludes destination-delivered records; a
    failed delivery increments DestinationDeliveryFailures and Dropped." — with and
    without a destination."""
    delivered = Rig(mapping_config(maximum_retry_attempts=0), ScriptedTarget(failing()),
                    ListDestination())
    dropped = Rig(mapping_config(maximum_retry_attempts=0), ScriptedTarget(failing()), None)
    for rig in (delivered, dropped):
        rig.put(*bodies(1, 2))
        rig.run_until_quiet()
    assert delivered.metrics.value("destination_delivered") == 2
    assert delivered.metrics.value("dropped") == 0
    assert dropped.metrics.value("dropped") == 2
    assert dropped.metrics.value("destination_delivered") == 0


def test_a_failed_delivery_counts_a_delivery_failure_and_is_retried_not_dropped() -> None:
    """Checklist 67: "... a failed delivery increments DestinationDeliveryFailures and
    Dropped." — DESIGN §7 deliberately differs on the second half: a failed write is
    retried until the notice is durable and nothing is acked past it, so no record is
    dropped; each failed write counts in esm_destination_delivery_failures."""
    destination = ListDestination(fail_times=2)
    rig = Rig(mapping_config(maximum_retry_attempts=0), ScriptedTarget(failing()), destination)
    rig.put(*bodies(1))
    rig.run_until_quiet()
    assert rig.metrics.value("destination_failures") == 2
    assert rig.metrics.value("dropped") == 0
    assert rig.metrics.value("destination_delivered") == 1
    assert destination.dead_bodies() == bodies(1)


# ---- 69 ----------------------------------------------------------------------------------

def test_readme_documents_at_least_once_and_never_promises_exactly_once() -> None:
    """Checklist 69: "Idempotency: document at-least-once; never promise exactly-once." """
    text = README.read_text(encoding="utf-8")
    assert re.search(r"at[- ]least[- ]once", text, re.IGNORECASE)
    assert re.search(r"idempotent", text, re.IGNORECASE)
    for sentence in re.split(r"(?<=[.!?])\s+", text):
        if re.search(r"exactly[- ]once", sentence, re.IGNORECASE):
            assert re.search(r"\b(not|never|no)\b", sentence, re.IGNORECASE), sentence
