"""Conformance of esm.filtering against the data files in tests/unit/filter_corpus/.

- spec_examples.json: the 40 worked examples of ESM-SPEC §3.7 (DESIGN §5 overrides marked);
- conformance.json: pattern groups with events that must and must not match;
- invalid.json: patterns that must be rejected, with the JSON path and rule in the message.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from esm.errors import FilterPatternError
from esm.filtering import compile_pattern

CORPUS = Path(__file__).parent / "filter_corpus"


def _load(name: str) -> Any:
    return json.loads((CORPUS / name).read_text(encoding="utf-8"))


def _spec_cases() -> list[Any]:
    return [pytest.param(case, id=f"example-{case['n']}-{'match' if case['match'] else 'no'}")
            for case in _load("spec_examples.json")["cases"]]


def _conformance_cases() -> list[Any]:
    params = []
    for group in _load("conformance.json")["groups"]:
        pattern = group.get("pattern_text", group.get("pattern"))
        for expected, key in ((True, "match"), (False, "no_match")):
            for index, event in enumerate(group[key]):
                params.append(pytest.param(pattern, event, expected,
                                           id=f"{group['name']}-{key}-{index}"))
    return params


def _invalid_cases() -> list[Any]:
    return [pytest.param(case, id=case["name"]) for case in _load("invalid.json")["cases"]]


@pytest.mark.parametrize("case", _spec_cases())
def test_spec_worked_example_gives_the_recorded_outcome(case: dict[str, Any]) -> None:
    # Given a worked example of ESM-SPEC §3.7 (as a pattern dict and as the JSON string)
    for pattern in (case["pattern"], json.dumps(case["pattern"])):
        # When the pattern is compiled and the record's filter view is matched
        result = compile_pattern(pattern).matches(case["event"])
        # Then the outcome is the recorded one (or DESIGN's override)
        assert result is case["match"]


@pytest.mark.parametrize(("pattern", "event", "expected"), _conformance_cases())
def test_conformance_case_matches_as_expected(pattern: Any, event: Any, expected: bool) -> None:
    # Given a pattern from the conformance corpus
    matcher = compile_pattern(pattern)
    # When the event is matched, Then the outcome is the expected one
    assert matcher.matches(event) is expected


@pytest.mark.parametrize("case", _invalid_cases())
def test_invalid_pattern_is_rejected_naming_path_and_rule(case: dict[str, str]) -> None:
    # Given an invalid pattern
    # When it is compiled
    with pytest.raises(FilterPatternError) as raised:
        compile_pattern(case["pattern_text"])
    # Then the message starts with the JSON path and names the rule broken
    message = str(raised.value)
    assert message.startswith(case["path"] + ": "), message
    assert case["rule"] in message, message


def test_corpus_is_sizable() -> None:
    # Given the data files, Then they hold hundreds of cases and all 40 spec examples
    groups = _load("conformance.json")["groups"]
    pairs = sum(len(group["match"]) + len(group["no_match"]) for group in groups)
    assert pairs >= 500
    assert {case["n"] for case in _load("spec_examples.json")["cases"]} == set(range(1, 41))
    assert len(_load("invalid.json")["cases"]) >= 80
