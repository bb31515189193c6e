"""Kafka's filter format-mismatch rule (ESM-SPEC §3.4): the value clause is ignored, not a
reason to drop, when the value's format and the clause's format differ."""

from __future__ import annotations

import pytest

from esm.errors import FilterPatternError
from esm.filtering.lenient import compile_lenient_filters

JSON_CLAUSE = '{"topic": ["orders"], "value": {"type": ["order"]}}'
PLAIN_CLAUSE = '{"topic": ["orders"], "value": [{"anything-but": ["error"]}]}'


@pytest.mark.parametrize("pattern, view, expected", [
    (JSON_CLAUSE, {"topic": "orders", "value": {"type": "order"}}, True),
    (JSON_CLAUSE, {"topic": "orders", "value": {"type": "refund"}}, False),
    # plain value vs JSON clause: clause ignored, metadata decides
    (JSON_CLAUSE, {"topic": "orders", "value": "not json"}, True),
    (JSON_CLAUSE, {"topic": "other", "value": "not json"}, False),
    # non-UTF-8 value (absent from the view): metadata only
    (JSON_CLAUSE, {"topic": "orders"}, True),
    (PLAIN_CLAUSE, {"topic": "orders", "value": "warning"}, True),
    (PLAIN_CLAUSE, {"topic": "orders", "value": "error"}, False),
    # JSON value vs plain clause: clause ignored
    (PLAIN_CLAUSE, {"topic": "orders", "value": {"level": "error"}}, True),
    ('{"value": {"type": ["order"]}}', {"value": "plain"}, True),
])
def test_value_clause_applies_only_when_formats_agree(pattern, view, expected):
    assert compile_lenient_filters([pattern], "value").matches(view) is expected


def test_patterns_without_a_value_clause_behave_as_usual():
    matcher = compile_lenient_filters(['{"topic": ["orders"]}'], "value")
    assert matcher.matches({"topic": "orders", "value": "x"})
    assert not matcher.matches({"topic": "refunds", "value": "x"})


def test_no_patterns_match_everything_and_invalid_ones_are_rejected():
    assert compile_lenient_filters([], "value").matches({"anything": 1})
    with pytest.raises(FilterPatternError):
        compile_lenient_filters(['{"value": {"type": "order"}}'], "value")
