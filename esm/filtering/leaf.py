"""Turn a validated `LeafSpec` into one fast predicate over the event value at a field.

All the work happens here, once, at compile time: exact values become sets, prefixes and
suffixes become tuples for one `str.startswith` call, wildcards become one regex, and the
tests are grouped per JSON type so a record's value is dispatched on `type(value)` once.

Semantics (ESM-SPEC §3.3, DESIGN §5):
- a leaf array is an OR of its values; an event array matches if any of its leaves does;
- `exists: true` matches a present leaf (null included); an object is not a leaf, so an
  object-valued, absent or empty-array field is "missing": only `exists: false` matches it;
- numbers compare by value and only with numbers; booleans are never numbers;
- `anything-but` needs a present leaf: it never matches a missing field.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

from esm.filtering.operators import LeafSpec
from esm.filtering.syntax import AnythingBut, NumericRange

Predicate = Callable[[Any], bool]


class _Missing:
    """The value of a field the document does not have."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


def _never(_value: Any) -> bool:
    return False


def _always(_value: Any) -> bool:
    return True


def compile_leaf(spec: LeafSpec) -> Predicate:
    """A predicate over the value found at the leaf's path (MISSING when absent)."""
    on_missing = spec.exists_false
    by_type: dict[type, Predicate] = {
        str: _any_of(_string_tests(spec)),
        int: _any_of(_number_tests(spec)),
        float: _any_of(_number_tests(spec)),
        Decimal: _any_of(_number_tests(spec)),  # JSON parsed with parse_float=Decimal
        bool: _any_of(_bool_tests(spec)),
        type(None): _any_of(_null_tests(spec)),
    }

    def match_array(items: list[Any]) -> bool:
        seen = False
        for item in _leaves(items):
            test = by_type.get(type(item))
            if test is None:
                continue  # not a JSON value; like an object, it is not a leaf
            seen = True
            if test(item):
                return True
        return on_missing if not seen else False

    def match(value: Any) -> bool:
        test = by_type.get(type(value))
        if test is not None:
            return test(value)
        if type(value) is list:
            return match_array(value)
        return on_missing  # MISSING or an object: not a leaf

    return match


def _leaves(items: list[Any]) -> Iterator[Any]:
    """Scalars inside an event array, nested arrays flattened in order; objects are not
    leaves. A stack, not recursion: events may nest arrays deeper than Python's stack."""
    stack = [iter(items)]
    while stack:
        for item in stack[-1]:
            if type(item) is list:
                stack.append(iter(item))
                break
            if type(item) is not dict:
                yield item
        else:
            stack.pop()


def _any_of(tests: list[Predicate]) -> Predicate:
    if not tests:
        return _never
    if len(tests) == 1:
        return tests[0]
    group = tuple(tests)

    def any_test(value: Any) -> bool:
        for test in group:  # a plain loop: any() over a generator costs more per record
            if test(value):
                return True
        return False

    return any_test


def _string_tests(spec: LeafSpec) -> list[Predicate]:
    if spec.exists_true:
        return [_always]
    tests: list[Predicate] = []
    if spec.strings:
        tests.append(frozenset(spec.strings).__contains__)
    if spec.prefixes:
        prefixes = tuple(spec.prefixes)
        tests.append(lambda value: value.startswith(prefixes))
    if spec.suffixes:
        suffixes = tuple(spec.suffixes)
        tests.append(lambda value: value.endswith(suffixes))
    tests.extend(_ignore_case_tests(spec))
    if spec.wildcards:
        joined = "|".join(f"(?:{regex.pattern})" for regex in spec.wildcards)
        tests.append(_regex_test(joined))
    if spec.cidrs:
        tests.append(_cidr_test(spec))
    tests.extend(_anything_but_test(rule) for rule in spec.anything_buts)
    return tests


def _ignore_case_tests(spec: LeafSpec) -> list[Predicate]:
    if not (spec.equals_ci or spec.prefixes_ci or spec.suffixes_ci):
        return []
    equals = frozenset(spec.equals_ci)
    prefixes, suffixes = tuple(spec.prefixes_ci), tuple(spec.suffixes_ci)

    def test(value: str) -> bool:
        lowered = value.lower()
        return (lowered in equals or bool(prefixes) and lowered.startswith(prefixes)
                or bool(suffixes) and lowered.endswith(suffixes))

    return [test]


def _regex_test(pattern: str) -> Predicate:
    fullmatch = re.compile(pattern, re.DOTALL).fullmatch
    return lambda value: fullmatch(value) is not None


def _cidr_test(spec: LeafSpec) -> Predicate:
    """IPv4 addresses are parsed by hand into an int (ipaddress is ~10x slower); IPv6 and
    anything unusual go through `ipaddress`, which stays the judge of what is valid."""
    v4 = tuple((int(n.network_address), int(n.netmask)) for n in spec.cidrs if n.version == 4)
    v6 = tuple(n for n in spec.cidrs if n.version == 6)

    def test(value: str) -> bool:
        number = _ipv4_number(value)
        if number is None:
            try:
                address = ipaddress.ip_address(value)
            except ValueError:
                return False
            if address.version == 6:
                return any(address in network for network in v6)
            number = int(address)
        return any(number & mask == network for network, mask in v4)

    return test


def _ipv4_number(value: str) -> int | None:
    """Dotted-quad without leading zeros (as `ipaddress` requires) to int; else None."""
    parts = value.split(".")
    if len(parts) != 4:
        return None
    number = 0
    for part in parts:
        if not part.isascii() or not part.isdigit() or (len(part) > 1 and part[0] == "0"):
            return None
        octet = int(part)
        if octet > 255:
            return None
        number = number << 8 | octet
    return number


def _number_tests(spec: LeafSpec) -> list[Predicate]:
    if spec.exists_true:
        return [_always]
    tests: list[Predicate] = []
    if spec.numbers:
        tests.append(frozenset(spec.numbers).__contains__)
    tests.extend(_range_test(rule) for rule in spec.ranges)
    tests.extend(_anything_but_test(rule) for rule in spec.anything_buts)
    return tests


def _range_test(rule: NumericRange) -> Predicate:
    """One chained comparison per range; an open end is an infinite bound."""
    low = float("-inf") if rule.low is None else rule.low
    high = float("inf") if rule.high is None else rule.high
    if rule.low_inclusive:
        if rule.high_inclusive:
            return lambda v: low <= v <= high
        return lambda v: low <= v < high
    if rule.high_inclusive:
        return lambda v: low < v <= high
    return lambda v: low < v < high


def _bool_tests(spec: LeafSpec) -> list[Predicate]:
    if spec.exists_true:
        return [_always]
    tests: list[Predicate] = []
    if spec.bools:
        bools = frozenset(spec.bools)
        tests.append(bools.__contains__)
    if spec.anything_buts:
        tests.append(_always)  # a boolean is never one of anything-but's strings or numbers
    return tests


def _null_tests(spec: LeafSpec) -> list[Predicate]:
    if spec.exists_true or spec.null or spec.anything_buts:
        return [_always]
    return []


def _anything_but_test(rule: AnythingBut) -> Predicate:
    """Strings and numbers are checked against the rule; `compile_leaf` dispatches by type,
    so a string never meets the number set and vice versa (DESIGN §5: no cross-type
    equality)."""
    if rule.prefixes:
        prefixes = rule.prefixes
        return lambda v: type(v) is not str or not v.startswith(prefixes)
    if rule.suffixes:
        suffixes = rule.suffixes
        return lambda v: type(v) is not str or not v.endswith(suffixes)
    if rule.equals_ci:
        lowered = rule.equals_ci
        return lambda v: type(v) is not str or v.lower() not in lowered
    if rule.wildcard is not None:
        fullmatch = rule.wildcard.fullmatch
        return lambda v: type(v) is not str or fullmatch(v) is None
    strings, numbers = rule.strings, rule.numbers
    return lambda v: v not in strings if type(v) is str else v not in numbers
