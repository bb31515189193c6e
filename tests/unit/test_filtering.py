"""The public API of esm.filtering: compile_pattern, compile_filters, Matcher and the
`esm test-filter` exit codes. Pattern semantics are covered case by case in
test_filtering_corpus.py."""

from __future__ import annotations

import copy
import json
import sys
from decimal import Decimal
from typing import Any

import pytest

from esm.errors import ConfigError, FilterPatternError
from esm.filtering import MAX_DEPTH, compile_filters, compile_pattern, test_filter_cli


def test_compile_pattern_accepts_a_json_string_or_a_dict_with_the_same_result() -> None:
    # Given the same pattern as a string and as a dict
    pattern = {"detail": {"state": ["running"], "count": [{"numeric": [">", 2]}]}}
    event = {"detail": {"state": "running", "count": 3}}
    # When both are compiled, Then they agree on matching and non-matching events
    for compiled in (compile_pattern(pattern), compile_pattern(json.dumps(pattern))):
        assert compiled.matches(event)
        assert not compiled.matches({"detail": {"state": "running", "count": 2}})


def test_compile_filters_ors_the_patterns() -> None:
    # Given two filters
    matcher = compile_filters(['{"a": ["1"]}', {"b": ["2"]}])
    # When records are matched, Then either filter is enough
    assert matcher.matches({"a": "1"})
    assert matcher.matches({"b": "2"})
    assert not matcher.matches({"a": "2", "b": "1"})


def test_compile_filters_with_no_patterns_matches_every_record() -> None:
    # Given no filters (ESM-SPEC §3.1), When any record is matched, Then it passes
    matcher = compile_filters([])
    assert matcher.matches({})
    assert matcher.matches({"anything": [1, {"x": None}]})


def test_compile_filters_accepts_any_iterable() -> None:
    # Given a generator of patterns, When compiled, Then each pattern is used
    matcher = compile_filters(p for p in ['{"a": ["1"]}', '{"a": ["2"]}'])
    assert matcher.matches({"a": "2"})
    assert not matcher.matches({"a": "3"})


def test_compile_filters_error_names_the_filter_index_and_path() -> None:
    # Given a valid filter followed by an invalid one
    with pytest.raises(FilterPatternError) as raised:
        compile_filters(['{"a": ["1"]}', '{"b": "2"}'])
    # Then the message names the filter and the JSON path
    assert str(raised.value).startswith("filters[1]: $.b: ")


def test_filter_pattern_error_is_a_config_error_and_a_value_error() -> None:
    # Given an invalid pattern, When compiled, Then callers may catch ConfigError or ValueError
    with pytest.raises(ConfigError):
        compile_pattern('{"a": []}')
    with pytest.raises(ValueError):
        compile_pattern('{"a": []}')


@pytest.mark.parametrize("pattern", [None, 5, ["a"], b'{"a": ["x"]}'])
def test_pattern_of_the_wrong_python_type_is_rejected(pattern: Any) -> None:
    # Given something that is neither a JSON string nor a dict, Then compiling it fails clearly
    with pytest.raises(FilterPatternError, match=r"^\$: a pattern must be a JSON string"):
        compile_pattern(pattern)


def test_dict_pattern_longer_than_the_limit_is_rejected() -> None:
    # Given a dict whose compact JSON exceeds 4096 characters (ESM-SPEC §1.2)
    pattern = {"a": ["x" * 5000]}
    # Then it is rejected like the string form
    with pytest.raises(FilterPatternError, match="limit is 4096"):
        compile_pattern(pattern)


def test_pattern_of_exactly_4096_characters_is_accepted() -> None:
    # Given a pattern string of exactly the limit
    prefix, suffix = '{"a": ["', '"]}'
    text = prefix + "x" * (4096 - len(prefix) - len(suffix)) + suffix
    assert len(text) == 4096
    # Then it compiles and matches
    assert compile_pattern(text).matches({"a": "x" * (4096 - len(prefix) - len(suffix))})


def test_dict_pattern_with_non_string_keys_is_rejected() -> None:
    # Given a dict pattern as YAML might produce it, with an integer key
    with pytest.raises(FilterPatternError, match="field names must be strings"):
        compile_pattern({"a": {1: ["x"]}})


def test_pattern_nesting_deeper_than_the_limit_is_rejected() -> None:
    # Given a pattern nested one level deeper than allowed
    pattern: dict[str, Any] = {"leaf": ["x"]}
    for _ in range(MAX_DEPTH + 1):
        pattern = {"a": pattern}
    # Then it is rejected instead of exhausting the stack
    with pytest.raises(FilterPatternError, match="nests deeper than"):
        compile_pattern(pattern)


HUGE = 10**400  # a JSON integer no double holds; json.loads gives a Python int


@pytest.mark.parametrize("pattern, where", [
    ({"a": [HUGE]}, "$.a[0]: numbers must be finite"),
    ({"a": [{"numeric": ["=", HUGE]}]}, "$.a[0].numeric[1]: numeric operands must lie"),
    ({"a": [{"numeric": [">", -HUGE]}]}, "$.a[0].numeric[1]: numeric operands must lie"),
    ({"a": [{"anything-but": HUGE}]}, "$.a[0].anything-but: anything-but numbers must be"),
    ({"a": [{"anything-but": [1, HUGE]}]}, "$.a[0].anything-but[1]: anything-but numbers"),
])
def test_integers_too_large_for_a_double_are_refused_not_a_crash(
        pattern: dict[str, Any], where: str) -> None:
    # Given a number math.isfinite cannot even convert (it raised OverflowError)
    with pytest.raises(FilterPatternError) as refused:
        compile_pattern(json.dumps(pattern))
    # Then the pattern is refused at the number's path
    assert str(refused.value).startswith(where), str(refused.value)


@pytest.mark.parametrize("pattern", [{"a": ["x"]}, {"a": {"b": ["x"]}},
                                     {"a": {"b": [{"exists": False}]}}])
def test_an_event_array_nested_deeper_than_the_stack_is_matched_without_recursion(
        pattern: dict[str, Any]) -> None:
    # Given an event whose field holds arrays nested deeper than Python's recursion limit
    # (orjson parses up to 1024 levels; the limit is 1000), with a match at the bottom
    deep: Any = [{"b": "x"} if "b" in json.dumps(pattern) else "x"]
    for _ in range(sys.getrecursionlimit() + 100):
        deep = [deep]
    # When matching, then the answer comes back (array consistency flattens the nesting)
    expected = pattern != {"a": {"b": [{"exists": False}]}}
    assert compile_pattern(pattern).matches({"a": deep}) is expected


def test_nested_or_groups_compile_and_match() -> None:
    # Given $or groups nested ten deep
    pattern: dict[str, Any] = {"x": ["hit"]}
    for depth in range(10):
        pattern = {"$or": [pattern, {f"f{depth}": ["never"]}]}
    matcher = compile_pattern(pattern)
    # Then the innermost alternative still decides
    assert matcher.matches({"x": "hit"})
    assert not matcher.matches({"x": "miss"})


def test_matching_does_not_modify_the_document() -> None:
    # Given a document with arrays and dotted keys
    document = {"a.b": "x", "c": [{"d": 1}, {"d": 2}], "e": None}
    before = copy.deepcopy(document)
    matcher = compile_pattern({"a": {"b": ["x"]}, "c": {"d": [2]}, "z": [{"exists": False}]})
    # When it is matched
    assert matcher.matches(document)
    # Then it is unchanged
    assert document == before


def test_matcher_is_reusable_across_many_documents() -> None:
    # Given one compiled matcher, When it sees many documents, Then results do not leak
    matcher = compile_pattern({"n": [{"numeric": [">", 50]}]})
    results = [matcher.matches({"n": n}) for n in range(100)]
    assert results == [n > 50 for n in range(100)]


def test_non_object_document_only_matches_absence_patterns() -> None:
    # Given a document that is not an object (a decoded plain-string body)
    assert compile_pattern({"a": [{"exists": False}]}).matches("plain")
    assert not compile_pattern({"a": ["plain"]}).matches("plain")


def test_cli_exits_0_on_match(capsys: pytest.CaptureFixture[str]) -> None:
    # Given a pattern and a matching event, When tested, Then the exit code is 0
    assert test_filter_cli('{"a": ["x"]}', '{"a": "x"}') == 0
    assert capsys.readouterr().err == ""


def test_cli_exits_1_on_no_match(capsys: pytest.CaptureFixture[str]) -> None:
    # Given a pattern and a non-matching event, When tested, Then the exit code is 1
    assert test_filter_cli('{"a": ["x"]}', '{"a": "y"}') == 1
    assert capsys.readouterr().err == ""


def test_cli_exits_2_on_invalid_pattern_and_says_where(capsys: pytest.CaptureFixture[str]) -> None:
    # Given an invalid pattern, When tested, Then exit 2 and stderr names the path and rule
    assert test_filter_cli('{"a": {"b": []}}', '{"a": "y"}') == 2
    assert "invalid pattern: $.a.b: empty arrays are not allowed" in capsys.readouterr().err


def test_cli_exits_2_on_event_that_is_not_json(capsys: pytest.CaptureFixture[str]) -> None:
    # Given an event that is not JSON, When tested, Then exit 2 with the reason on stderr
    assert test_filter_cli('{"a": ["x"]}', '{"a": ') == 2
    assert "invalid event: not valid JSON" in capsys.readouterr().err


def test_cli_exits_2_on_event_that_is_not_an_object(capsys: pytest.CaptureFixture[str]) -> None:
    # Given an event that is a JSON array, When tested, Then exit 2 with the reason on stderr
    assert test_filter_cli('{"a": ["x"]}', '["x"]') == 2
    assert "invalid event: must be a JSON object" in capsys.readouterr().err


def test_cli_checks_the_event_before_the_pattern(capsys: pytest.CaptureFixture[str]) -> None:
    # Given both inputs bad, When tested, Then exit 2 and the event problem is reported
    assert test_filter_cli("nope", "nope") == 2
    assert "invalid event" in capsys.readouterr().err


def test_decimal_numbers_compare_by_value() -> None:
    # Given a document parsed with parse_float=Decimal
    document = json.loads('{"price": 300.0, "rate": 0.5}', parse_float=Decimal)
    # Then exact and numeric matching treat Decimals as numbers
    assert compile_pattern({"price": [300]}).matches(document)
    assert compile_pattern({"rate": [{"numeric": [">", 0.25, "<", 1]}]}).matches(document)
    assert not compile_pattern({"price": ["300.0"]}).matches(document)


def test_values_that_are_not_json_types_are_not_leaves() -> None:
    # Given a document holding a non-JSON Python value (bytes), alone and inside an array
    assert not compile_pattern({"a": [{"exists": True}]}).matches({"a": b"x"})
    assert not compile_pattern({"a": [{"exists": True}]}).matches({"a": [b"x"]})
    assert compile_pattern({"a": [{"exists": False}]}).matches({"a": [b"x"]})


def test_matcher_is_immutable_and_describes_its_pattern() -> None:
    # Given a compiled matcher
    matcher = compile_pattern('{"a": ["x"]}')
    # When someone tries to change it, Then it refuses
    with pytest.raises(AttributeError):
        matcher.matches = lambda _doc: True
    # And its repr shows the pattern
    assert repr(matcher) == """Matcher('{"a":["x"]}')"""
