"""Property: any pattern compiles to a Matcher or is refused with FilterPatternError naming
the JSON path (`$.a.b: ...`, `filters[2]: $...`); a compiled matcher answers a bool for any
document, however odd or deep, and never raises."""

from __future__ import annotations

import contextlib
import io
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from esm.errors import FilterPatternError
from esm.filtering import Matcher, compile_filters, compile_pattern, test_filter_cli
from esm.filtering.lenient import compile_lenient_filters
from tests.unit.fuzz.filter_patterns import pattern_objects
from tests.unit.fuzz.json_values import (
    JSON_SCALARS,
    ODD_TEXT,
    deep_nesting,
    json_values,
    production_stack,
)

_DOC_KEYS = st.sampled_from(["body", "value", "data", "a", "b", "a.b", "x", "y", "z",
                             "eventName", "prefix", ""])
_DOC_VALUES = st.one_of(JSON_SCALARS, ODD_TEXT, st.sampled_from(
    [10**400, -(10**400), 2**64, 1e308, "10.1.2.3", "::1", "1.2.3.4"]),
    st.integers(1, 5).map(lambda n: "a" * 10**n))
DOCUMENTS: st.SearchStrategy[Any] = st.one_of(
    st.recursive(st.dictionaries(_DOC_KEYS, _DOC_VALUES, max_size=4), lambda inner: st.one_of(
        st.dictionaries(_DOC_KEYS, st.one_of(inner, _DOC_VALUES, st.lists(
            st.one_of(inner, _DOC_VALUES), max_size=3)), max_size=4)), max_leaves=15),
    st.builds(lambda key, deep: {key: deep}, _DOC_KEYS, deep_nesting(1000, _DOC_KEYS)),
    json_values())


def compiled_or_refused(compile_it: Any, pattern: Any, prefix: str = "$") -> Matcher | None:
    """The matcher, or None after checking the refusal names a JSON path."""
    try:
        matcher = compile_it(pattern)
    except FilterPatternError as exc:
        assert str(exc).startswith(prefix), str(exc)
        assert exc.problems and all(p.startswith(prefix) for p in exc.problems), exc.problems
        return None
    assert isinstance(matcher, Matcher)
    return matcher


@given(pattern=pattern_objects(), documents=st.lists(DOCUMENTS, max_size=3))
def test_pattern_objects_compile_or_are_refused_with_a_path(
        pattern: Any, documents: list[Any]) -> None:
    matcher = compiled_or_refused(compile_pattern, pattern)
    for document in documents if matcher else ():
        with production_stack():
            assert type(matcher.matches(document)) is bool


@given(pattern=pattern_objects(), deep=deep_nesting(1000, _DOC_KEYS))
def test_matchers_answer_for_deep_values_under_the_patterns_own_keys(
        pattern: Any, deep: Any) -> None:
    # Given a document nesting a value ~1000 levels deep (orjson parses up to 1024) under
    # each key the pattern names, so matching walks into it
    matcher = compiled_or_refused(compile_pattern, pattern)
    if matcher is None or not isinstance(pattern, dict):
        return
    document = {key.split(".")[0]: deep for key in pattern}
    # Then, with a worker thread's stack, the matcher answers
    with production_stack():
        assert type(matcher.matches(document)) is bool


@given(text=st.one_of(pattern_objects().map(lambda p: json.dumps(p, default=str)),
                      ODD_TEXT, st.text(max_size=60),
                      st.sampled_from(['{"a": [1e400]}', '{"a": [NaN]}',
                                       '{"a": [{"numeric": ["=", 1' + "0" * 400 + ']}]}',
                                       '{"a": [{"anything-but": 1' + "0" * 400 + '}]}']),
                      st.integers(1, 4).map(lambda n: '{"a": ' * 10**n)))
def test_pattern_texts_compile_or_are_refused_with_a_path(text: str) -> None:
    compiled_or_refused(compile_pattern, text)


@given(patterns=st.lists(pattern_objects(max_leaves=6), max_size=4),
       documents=st.lists(DOCUMENTS, max_size=3))
def test_filter_lists_name_the_filter_and_the_path(
        patterns: list[Any], documents: list[Any]) -> None:
    matcher = compiled_or_refused(compile_filters, patterns, prefix="filters[")
    lenient = compiled_or_refused(lambda p: compile_lenient_filters(p, "value"), patterns,
                                  prefix="filters[")
    assert (matcher is None) == (lenient is None)  # the same patterns are refused
    for document in documents if matcher and lenient else ():
        with production_stack():
            assert type(matcher.matches(document)) is bool
            assert type(lenient.matches(document)) is bool


@given(pattern=st.one_of(pattern_objects().map(lambda p: json.dumps(p, default=str)),
                         st.text(max_size=30)),
       event=st.one_of(DOCUMENTS.map(lambda d: json.dumps(d, default=str)),
                       st.text(max_size=30)))
def test_the_test_filter_command_answers_0_1_or_2(pattern: str, event: str) -> None:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = test_filter_cli(pattern, event)
    assert code in (0, 1, 2)
    assert (code == 2) == bool(err.getvalue()), err.getvalue()
