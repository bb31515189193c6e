"""Validate one pattern leaf (the array of match values under a field) into a `LeafSpec`.

A leaf is an array; each element is a literal (string, number, true/false, null) or an
object holding exactly one operator (ESM-SPEC §3.2, §3.3; DESIGN §5). Everything wrong is
reported as `FilterPatternError("<json path>: <rule broken>")`, so a user can find the spot
in a long pattern. This module only checks and collects; `esm.filtering.leaf` turns a
`LeafSpec` into a fast predicate.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from esm.filtering.syntax import (
    AnythingBut,
    NumericRange,
    child_path,
    fail,
    is_finite,
    is_number,
    parse_anything_but,
    parse_numeric,
    wildcard_regex,
)
from esm.filtering.syntax import kind as _kind

OPERATORS = (
    "prefix",
    "suffix",
    "equals-ignore-case",
    "anything-but",
    "numeric",
    "exists",
    "cidr",
    "wildcard",
)

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(slots=True)
class LeafSpec:
    """Everything one leaf array asks for, grouped by kind so matching can use sets."""

    strings: set[str] = field(default_factory=set)
    numbers: set[float] = field(default_factory=set)
    bools: set[bool] = field(default_factory=set)
    null: bool = False
    prefixes: list[str] = field(default_factory=list)
    suffixes: list[str] = field(default_factory=list)
    prefixes_ci: list[str] = field(default_factory=list)
    suffixes_ci: list[str] = field(default_factory=list)
    equals_ci: set[str] = field(default_factory=set)
    wildcards: list[re.Pattern[str]] = field(default_factory=list)
    cidrs: list[IpNetwork] = field(default_factory=list)
    ranges: list[NumericRange] = field(default_factory=list)
    anything_buts: list[AnythingBut] = field(default_factory=list)
    exists_true: bool = False
    exists_false: bool = False


def parse_leaf(values: Any, path: str) -> LeafSpec:
    """Check a leaf array and collect its match values (ESM-SPEC §3.3: arrays, non-empty)."""
    if not isinstance(values, list):
        fail(path, f"a match value must be an array, got {_kind(values)}")
    if not values:
        fail(path, "empty arrays are not allowed")
    spec = LeafSpec()
    for index, value in enumerate(values):
        _add_value(spec, value, f"{path}[{index}]")
    return spec


def _add_value(spec: LeafSpec, value: Any, path: str) -> None:
    if value is None:
        spec.null = True
    elif isinstance(value, bool):
        spec.bools.add(value)
    elif isinstance(value, str):
        spec.strings.add(value)
    elif is_number(value):
        if not is_finite(value):
            fail(path, "numbers must be finite")
        spec.numbers.add(value)
    elif isinstance(value, dict):
        _add_operator(spec, value, path)
    else:
        fail(path, f"a match value must be a string, number, boolean, null or operator "
                   f"object, got {_kind(value)}")


def _add_operator(spec: LeafSpec, value: dict[str, Any], path: str) -> None:
    if len(value) != 1:
        what = "is empty" if not value else f"mixes {len(value)} operators {sorted(value)}"
        fail(path, f"an operator object must hold exactly one operator; this one {what}")
    (name, operand), = value.items()
    handler = _HANDLERS.get(name)
    if handler is None:
        hint = difflib.get_close_matches(name, OPERATORS, n=1)
        suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
        fail(path, f"unknown operator {name!r}{suggestion}; expected one of "
                   f"{', '.join(OPERATORS)}")
    handler(spec, operand, child_path(path, name))


def _prefix(spec: LeafSpec, operand: Any, path: str) -> None:
    text, ignore_case = _affix_operand(operand, path, "prefix")
    (spec.prefixes_ci if ignore_case else spec.prefixes).append(text)


def _suffix(spec: LeafSpec, operand: Any, path: str) -> None:
    text, ignore_case = _affix_operand(operand, path, "suffix")
    (spec.suffixes_ci if ignore_case else spec.suffixes).append(text)


def _affix_operand(operand: Any, path: str, name: str) -> tuple[str, bool]:
    """`prefix`/`suffix` take a string, or `{"equals-ignore-case": string}` [EB operators]."""
    if isinstance(operand, str):
        return operand, False
    if isinstance(operand, dict) and list(operand) == ["equals-ignore-case"]:
        inner = operand["equals-ignore-case"]
        if isinstance(inner, str):
            return inner.lower(), True
        fail(child_path(path, "equals-ignore-case"), f"must be a string, got {_kind(inner)}")
    fail(path, f"{name} takes a string or {{\"equals-ignore-case\": string}}, "
               f"got {_kind(operand)}")
    raise AssertionError  # unreachable: fail() raises


def _equals_ignore_case(spec: LeafSpec, operand: Any, path: str) -> None:
    if not isinstance(operand, str):
        fail(path, f"equals-ignore-case takes a string, got {_kind(operand)}")
    spec.equals_ci.add(operand.lower())


def _exists(spec: LeafSpec, operand: Any, path: str) -> None:
    if not isinstance(operand, bool):
        fail(path, f"exists takes true or false, got {_kind(operand)}")
    if operand:
        spec.exists_true = True
    else:
        spec.exists_false = True


def _numeric(spec: LeafSpec, operand: Any, path: str) -> None:
    parsed = parse_numeric(operand, path)
    if isinstance(parsed, NumericRange):
        spec.ranges.append(parsed)
    else:
        spec.numbers.add(parsed)


def _cidr(spec: LeafSpec, operand: Any, path: str) -> None:
    """IPv4 or IPv6 network such as "10.0.0.0/24"; host bits are ignored [EB content]."""
    if not isinstance(operand, str):
        fail(path, f"cidr takes a string such as \"10.0.0.0/24\", got {_kind(operand)}")
    try:
        spec.cidrs.append(ipaddress.ip_network(operand.strip(), strict=False))
    except ValueError:
        fail(path, f"{operand!r} is not a valid IPv4 or IPv6 CIDR block")


def _wildcard(spec: LeafSpec, operand: Any, path: str) -> None:
    if not isinstance(operand, str):
        fail(path, f"wildcard takes a string, got {_kind(operand)}")
    spec.wildcards.append(wildcard_regex(operand, path))


def _anything_but(spec: LeafSpec, operand: Any, path: str) -> None:
    spec.anything_buts.append(parse_anything_but(operand, path))


_HANDLERS: dict[str, Callable[[LeafSpec, Any, str], None]] = {
    "prefix": _prefix,
    "suffix": _suffix,
    "equals-ignore-case": _equals_ignore_case,
    "anything-but": _anything_but,
    "numeric": _numeric,
    "exists": _exists,
    "cidr": _cidr,
    "wildcard": _wildcard,
}

