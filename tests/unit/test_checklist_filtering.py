"""ESM-SPEC §8 checklist, filter lines 19–32: the pattern language through the public API
(`esm.filtering.compile_filters`), the per-source mismatch rules as far as the core decides
them (the memory source's `body` view, like SQS; `esm.filtering.lenient` for Kafka), and the
fate of non-matching records on the real reader."""

from __future__ import annotations

import json
from typing import Any

import pytest

from esm.filtering import compile_filters, compile_pattern
from esm.filtering.lenient import compile_lenient_filters
from tests.unit.checklist_support import bodies
from tests.unit.runtime_fakes import Rig, ScriptedTarget, mapping_config


def matches(pattern: str | list[str], document: Any) -> bool:
    patterns = [pattern] if isinstance(pattern, str) else pattern
    return compile_filters(patterns).matches(document)


# ---- 19 ----------------------------------------------------------------------------------

def test_filters_are_ored_fields_are_anded_and_leaf_values_are_ored() -> None:
    """Checklist 19: "Filter: multiple filters are ORed; fields inside one pattern are ANDed;
    array leaf values are ORed." """
    a_and_b = '{"a": [1], "b": [2]}'
    c_either = '{"c": ["x", "y"]}'
    # filters ORed
    assert matches([a_and_b, c_either], {"c": "y"})
    assert matches([a_and_b, c_either], {"a": 1, "b": 2})
    # fields ANDed
    assert not matches(a_and_b, {"a": 1, "b": 3})
    # leaf values ORed
    assert matches(c_either, {"c": "x"}) and matches(c_either, {"c": "y"})
    assert not matches(c_either, {"c": "z"})


# ---- 20 ----------------------------------------------------------------------------------

def test_a_pattern_field_missing_from_the_event_never_matches_except_exists_false() -> None:
    """Checklist 20: "Filter: a pattern field missing from the event → no match (except
    exists:false)." """
    assert not matches('{"a": ["x"]}', {"b": "x"})
    assert not matches('{"a": [{"prefix": ""}]}', {"b": "x"})
    assert not matches('{"a": [{"numeric": [">", 0]}]}', {})
    assert matches('{"a": [{"exists": false}]}', {"b": "x"})


# ---- 21 ----------------------------------------------------------------------------------

def test_exists_works_on_leaves_only() -> None:
    """Checklist 21: "Filter: exists:true on an object-valued field never matches;
    exists:false on it matches." """
    event = {"person": {"address": {"street": "123 Main St"}}}
    assert not matches('{"person": {"address": [{"exists": true}]}}', event)
    assert matches('{"person": {"address": [{"exists": false}]}}', event)
    assert matches('{"person": {"address": {"street": [{"exists": true}]}}}', event)


# ---- 22 ----------------------------------------------------------------------------------

def test_null_matches_only_null_and_empty_string_only_the_empty_string() -> None:
    """Checklist 22: "Filter: [null] matches only null; [""] matches only the empty string." """
    assert matches('{"a": [null]}', {"a": None})
    assert not matches('{"a": [null]}', {"a": ""})
    assert not matches('{"a": [null]}', {})
    assert matches('{"a": [""]}', {"a": ""})
    assert not matches('{"a": [""]}', {"a": None})


# ---- 23 ----------------------------------------------------------------------------------

def test_numeric_matches_json_numbers_never_numeric_strings() -> None:
    """Checklist 23: "Filter: numeric ops match only JSON numbers, never numeric strings (so
    never DDB "N")." """
    assert matches('{"t": [{"numeric": [">", 50, "<=", 60]}]}', {"t": 55})
    assert not matches('{"t": [{"numeric": [">", 50, "<=", 60]}]}', {"t": "55"})
    ddb = {"dynamodb": {"NewImage": {"n": {"N": "150"}}}}
    assert not matches('{"dynamodb": {"NewImage": {"n": {"N": [{"numeric": [">", 100]}]}}}}',
                       ddb)


# ---- 24 ----------------------------------------------------------------------------------

def test_exact_numbers_compare_by_value_as_design_decides() -> None:
    """Checklist 24: "Filter: exact numeric equality compares textual form (300 ≠ 300.0)." —
    DESIGN §5 overrides this line (ESM-SPEC's preamble: DESIGN wins on "number equality in
    filters"): esm follows what AWS was recorded doing, numbers compare by value. This test
    pins DESIGN's rule; textual forms still never match strings."""
    assert matches('{"price": [300]}', {"price": 300.0})
    assert matches('{"price": [300]}', {"price": 3.0e2})
    assert not matches('{"price": [300]}', {"price": 300.5})
    assert not matches('{"price": [300]}', {"price": "300"})


# ---- 25 ----------------------------------------------------------------------------------

def test_an_event_array_matches_if_any_element_matches() -> None:
    """Checklist 25: "Filter: event arrays match if any element matches." """
    pattern = '{"resources": ["arn:i-b188560f", "arn:other"]}'
    assert matches(pattern, {"resources": ["arn:asg", "arn:i-b188560f"]})
    assert not matches(pattern, {"resources": ["arn:asg", "arn:elb"]})
    assert matches('{"n": [{"numeric": [">", 5]}]}', {"n": [1, 2, 9]})


# ---- 26 ----------------------------------------------------------------------------------

def test_prefix_suffix_and_equals_are_case_sensitive_but_equals_ignore_case_is_not() -> None:
    """Checklist 26: "Filter: prefix/suffix/equals are case-sensitive; equals-ignore-case is
    not." """
    assert not matches('{"f": [{"suffix": ".png"}]}', {"f": "photo.PNG"})
    assert matches('{"f": [{"suffix": ".png"}]}', {"f": "photo.png"})
    assert not matches('{"r": [{"prefix": "us-"}]}', {"r": "US-east-1"})
    assert not matches('{"n": ["Alice"]}', {"n": "alice"})
    assert matches('{"n": [{"equals-ignore-case": "alice"}]}', {"n": "ALICE"})


# ---- 27 ----------------------------------------------------------------------------------

@pytest.mark.parametrize("operand", ['"initializing"', '["stopped", "overloaded"]'])
def test_anything_but_fails_when_the_field_is_absent(operand: str) -> None:
    """Checklist 27: "Filter: anything-but (value or list) fails when the field is absent." """
    pattern = f'{{"state": [{{"anything-but": {operand}}}]}}'
    assert not matches(pattern, {"other": "running"})
    assert matches(pattern, {"state": "running"})


# ---- 28 ----------------------------------------------------------------------------------

def test_or_of_sub_patterns_is_supported() -> None:
    """Checklist 28: "Filter: $or of sub-patterns is supported." """
    pattern = '{"$or": [{"Location": ["New York"]}, {"Day": ["Monday"]}]}'
    assert matches(pattern, {"Location": "Boston", "Day": "Monday"})
    assert matches(pattern, {"Location": "New York", "Day": "Friday"})
    assert not matches(pattern, {"Location": "Boston", "Day": "Friday"})


# ---- 29 ----------------------------------------------------------------------------------

@pytest.mark.parametrize("pattern, body, kept", [
    ('{"body": {"k": ["v"]}}', {"k": "v"}, True),          # JSON body, JSON pattern
    ('{"body": {"k": ["v"]}}', "plain-string", False),     # JSON pattern, plain body: drop
    ('{"body": ["plain-string"]}', "plain-string", True),  # plain pattern, plain body
    ('{"body": [{"prefix": "{"}]}', {"k": "v"}, False),    # plain pattern, JSON body: drop
])
def test_a_body_is_parsed_as_json_when_valid_and_a_format_mismatch_drops_the_record(
        pattern: str, body: Any, kept: bool) -> None:
    """Checklist 29: "Filter: SQS body parsed as JSON when valid; JSON pattern vs non-JSON
    body (or vice versa) → record filtered out." — on the memory source, whose filter view
    parses `body` as SQS does."""
    target = ScriptedTarget()
    rig = Rig(mapping_config("queue", filter_patterns=(pattern,)), target)
    rig.put(body)
    rig.run_until_quiet()
    assert (len(target.calls) == 1) is kept
    assert rig.metrics.value("filtered_out") == (0 if kept else 1)


# ---- 30 ----------------------------------------------------------------------------------

def test_data_that_is_not_json_is_dropped_by_a_data_pattern() -> None:
    """Checklist 30: "Filter: Kinesis data is base64-decoded then JSON-parsed; non-JSON data
    with a data pattern → filtered out." — the core's part: given the decoded view, an
    object clause on `data` never matches plain-string data (the plain matcher drops it),
    while a pattern without a data clause filters on metadata only."""
    data_pattern = '{"data": {"Location": ["Los Angeles"]}}'
    assert matches(data_pattern, {"partitionKey": "1", "data": {"Location": "Los Angeles"}})
    assert not matches(data_pattern, {"partitionKey": "1", "data": "Los Angeles"})
    assert matches('{"partitionKey": ["1"]}', {"partitionKey": "1", "data": "not json"})


# ---- 31 ----------------------------------------------------------------------------------

@pytest.mark.parametrize("view, kept", [
    ({"topic": "orders", "value": {"type": "order"}}, True),    # JSON + JSON: filter on it
    ({"topic": "orders", "value": {"type": "refund"}}, False),
    ({"topic": "orders", "value": "plain text"}, True),         # mismatch: clause ignored
    ({"topic": "orders"}, True),                                # non-UTF-8: value absent
    ({"topic": "refunds", "value": "plain text"}, False),       # metadata still decides
])
def test_kafka_value_clause_is_ignored_on_a_format_mismatch(view: dict[str, Any],
                                                            kept: bool) -> None:
    """Checklist 31: "Filter: Kafka value decoded as UTF-8 (then JSON); a format mismatch or
    non-UTF-8 value means the value clause is ignored (metadata-only filtering)." """
    matcher = compile_lenient_filters(['{"topic": ["orders"], "value": {"type": ["order"]}}'],
                                      "value")
    assert matcher.matches(view) is kept


def test_kafka_plain_value_clause_applies_to_plain_values() -> None:
    """Checklist 31: "... decoded as UTF-8 ..." — plain + plain filters (worked examples 10
    and 11: anything-but "error")."""
    matcher = compile_lenient_filters(['{"value": [{"anything-but": ["error"]}]}'], "value")
    assert not matcher.matches({"value": "error"})
    assert matcher.matches({"value": "warning"})
    assert not compile_pattern('{"value": {"type": ["order"]}}').matches({"value": "x"})


# ---- 32 ----------------------------------------------------------------------------------

def test_queue_records_that_do_not_match_are_deleted_at_once() -> None:
    """Checklist 32: "Filter: SQS non-matching messages are deleted immediately; stream
    non-matching records are skipped and the checkpoint advances; Kafka offsets are
    committed." — the queue family."""
    # Given a queue mapping whose filter keeps id 1 only, and a target that is never run
    target = ScriptedTarget()
    rig = Rig(mapping_config("queue", filter_patterns=('{"body": {"id": [1]}}',)), target)
    rig.put(*bodies(1, 2, 3))
    # When the reader polls once and the matching batch has not run yet
    rig.turn(run_workers=False)
    # Then the two non-matching messages are already deleted
    assert sorted(rig.broker.acked) == ["lane-0:1", "lane-0:2"]
    assert rig.metrics.value("deleted") == 2


def test_stream_records_that_do_not_match_advance_the_checkpoint() -> None:
    """Checklist 32: "... stream non-matching records are skipped and the checkpoint
    advances; Kafka offsets are committed." """
    # Given a stream whose records all fail the filter, behind one that matches
    target = ScriptedTarget()
    rig = Rig(mapping_config(filter_patterns=('{"body": {"id": [1]}}',)), target)
    rig.put(*bodies(1, 2, 3, 4))
    # When everything is processed
    rig.run_until_quiet()
    # Then only id 1 was invoked and the checkpoint moved past all four
    assert target.calls == [[json.dumps({"id": 1})]]
    assert rig.broker.committed("lane-0") == 4
    assert rig.metrics.value("committed") == 4
