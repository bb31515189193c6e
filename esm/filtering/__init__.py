"""FilterCriteria: compile EventBridge-style patterns once, match records fast.

Public API (DESIGN §5; other tools and the conformance corpus call exactly this):
- `compile_pattern(pattern) -> Matcher`: one pattern, a JSON string or an already-parsed dict.
- `compile_filters(patterns) -> Matcher`: several patterns ORed; no patterns match all
  (ESM-SPEC §3.1).
- `Matcher.matches(document) -> bool`: the document is the record's decoded filter view.
- `test_filter_cli(pattern_json, event_json) -> int`: `esm test-filter` exit code,
  0 match, 1 no match, 2 invalid pattern or event (DESIGN §9).

Invalid patterns raise `FilterPatternError("<json path>: <rule broken>")`.

Structure rules (ESM-SPEC §3.3; DESIGN §5 where they differ):
- fields in one object are ANDed; `$or` (an array of >= 2 objects) ORs sub-patterns and may
  appear at any level and nest;
- a dotted key `"a.b"` is the path a -> b, in the pattern and, as a fallback, in the event;
- duplicate keys: the last wins (also when a dotted key and a nested object name one path);
- when an object-valued pattern field meets an event array, each array element is tried
  as a whole, so every field matched under it comes from the same element.
`esm.filtering.tree` validates the structure, `esm.filtering.operators` the leaves; this module
turns object levels into nested closures and `esm.filtering.leaf` turns leaves into predicates.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from typing import Any

from esm.errors import FilterPatternError
from esm.filtering.leaf import MISSING, Predicate, compile_leaf
from esm.filtering.operators import LeafSpec
from esm.filtering.syntax import kind
from esm.filtering.tree import MAX_DEPTH, MAX_PATTERN_CHARS, PatternNode, parse_pattern

__all__ = ["MATCH_ALL", "MAX_DEPTH", "MAX_PATTERN_CHARS", "Matcher", "compile_filters",
           "compile_pattern", "test_filter_cli"]


class Matcher:
    """A compiled pattern (or OR of patterns). Immutable, so safe to share across threads.

    `matches(document) -> bool` is the compiled closure itself, stored on the instance,
    so a match costs no extra method dispatch on the reader's hot path.
    """

    __slots__ = ("matches", "description")

    matches: Callable[[Any], bool]
    description: str

    def __init__(self, test: Callable[[Any], bool], description: str = "") -> None:
        object.__setattr__(self, "matches", test)
        object.__setattr__(self, "description", description)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Matcher is immutable; cannot set {name!r}")

    def __repr__(self) -> str:
        return f"Matcher({self.description!r})"


def _match_all(_document: Any) -> bool:
    return True


MATCH_ALL = Matcher(_match_all, "match all")


def compile_pattern(pattern: str | dict[str, Any]) -> Matcher:
    """Validate and compile one pattern; raises FilterPatternError naming path and rule."""
    tree, root = parse_pattern(pattern)
    match_object, on_missing = _compile_object(root)

    def test(document: Any) -> bool:
        if type(document) is dict:
            return match_object(document)
        return on_missing  # a non-object view has no fields (ESM-SPEC §3.4 mismatch)

    return Matcher(test, json.dumps(tree, separators=(",", ":"))[:200])


def compile_filters(patterns: Iterable[str | dict[str, Any]]) -> Matcher:
    """OR several patterns (ESM-SPEC §3.1); an empty list matches every record.

    Errors name the filter: `filters[2]: $.detail: ...`.
    """
    matchers: list[Matcher] = []
    for index, pattern in enumerate(patterns):
        try:
            matchers.append(compile_pattern(pattern))
        except FilterPatternError as exc:
            raise FilterPatternError(f"filters[{index}]: {exc}") from exc
    if not matchers:
        return MATCH_ALL
    if len(matchers) == 1:
        return matchers[0]
    tests = tuple(matcher.matches for matcher in matchers)

    def match_any(document: Any) -> bool:
        for test in tests:
            if test(document):
                return True
        return False

    return Matcher(match_any, " OR ".join(matcher.description for matcher in matchers))


def test_filter_cli(pattern_json: str, event_json: str) -> int:
    """`esm test-filter --pattern P --event E`: 0 match, 1 no match, 2 bad input (stderr)."""
    try:
        event = json.loads(event_json)
    except ValueError as exc:
        print(f"invalid event: not valid JSON: {exc}", file=sys.stderr)
        return 2
    if not isinstance(event, dict):
        print(f"invalid event: must be a JSON object, got {kind(event)}", file=sys.stderr)
        return 2
    try:
        matcher = compile_pattern(pattern_json)
    except FilterPatternError as exc:
        print(f"invalid pattern: {exc}", file=sys.stderr)
        return 2
    return 0 if matcher.matches(event) else 1


test_filter_cli.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def _compile_node(node: PatternNode) -> tuple[Predicate, bool]:
    """A predicate over the value at this node's path, and whether MISSING matches it.

    A MISSING value, a scalar, or an empty array holds no fields, so it matches exactly
    when every field and `$or` group accepts MISSING (only `exists: false` does).
    """
    match_object, on_missing = _compile_object(node)
    match_elements = _any_element(match_object, on_missing)

    def match(value: Any) -> bool:
        if type(value) is dict:
            return match_object(value)
        if type(value) is list and value:
            return match_elements(value)
        return on_missing

    return match, on_missing


def _any_element(match_object: Predicate, on_missing: bool) -> Predicate:
    """Array consistency (DESIGN §5): the whole sub-pattern against one element. Nested
    arrays are flattened with a stack, not recursion, since an event may nest them deeper
    than Python's stack (orjson parses 1024 levels; the recursion limit is 1000)."""

    def match_elements(items: list[Any]) -> bool:
        pending = [items]
        while pending:
            for element in pending.pop():
                if type(element) is dict:
                    if match_object(element):
                        return True
                elif type(element) is list and element:
                    pending.append(element)
                elif on_missing:
                    return True
        return False

    return match_elements


def _compile_object(node: PatternNode) -> tuple[Predicate, bool]:
    fields = _compile_fields(node)
    compiled_groups = [[_compile_object(alt) for alt in group] for group in node.ors]
    groups = tuple(tuple(test for test, _ in group) for group in compiled_groups)
    on_missing = all(missing for _, _, _, missing in fields) and all(
        any(missing for _, missing in group) for group in compiled_groups)
    checks = tuple((key, prefix, test) for key, prefix, test, _ in fields)
    if len(checks) == 1 and not groups:
        return _single_field(*checks[0]), on_missing

    def match_fields(document: dict[str, Any]) -> bool:
        get = document.get
        for key, dotted_prefix, test in checks:
            value = get(key, MISSING)
            if value is MISSING and dotted_prefix is not None:
                value = _dotted_view(document, dotted_prefix)
            if not test(value):
                return False
        return True

    if not groups:
        return match_fields, on_missing

    def match_object(document: dict[str, Any]) -> bool:
        if not match_fields(document):
            return False
        return all(any(alt(document) for alt in group) for group in groups)

    return match_object, on_missing


def _single_field(key: str, dotted_prefix: str | None, test: Predicate) -> Predicate:
    """The most common object level: one field, no `$or`; one call less per level."""

    def match_field(document: dict[str, Any]) -> bool:
        value = document.get(key, MISSING)
        if value is MISSING and dotted_prefix is not None:
            value = _dotted_view(document, dotted_prefix)
        return test(value)

    return match_field


def _compile_fields(node: PatternNode) -> list[tuple[str, str | None, Predicate, bool]]:
    """(key, dotted-key prefix or None, predicate, matches MISSING) per field. Leaves
    come first: they are the cheapest and most selective checks, so misses exit early."""
    compiled: list[tuple[int, str, str | None, Predicate, bool]] = []
    for key, child in node.fields.items():
        if isinstance(child, LeafSpec):
            compiled.append((0, key, None, compile_leaf(child), child.exists_false))
        else:
            test, on_missing = _compile_node(child)
            compiled.append((1, key, key + ".", test, on_missing))
    compiled.sort(key=lambda item: item[0])
    return [(key, prefix, test, missing) for _, key, prefix, test, missing in compiled]


def _dotted_view(document: dict[str, Any], prefix: str) -> Any:
    """Event keys written dotted (`{"a.b": 1}`) seen as the nested object `a` (DESIGN §5)."""
    view = {key[len(prefix):]: value for key, value in document.items()
            if key.startswith(prefix)}
    return view if view else MISSING
