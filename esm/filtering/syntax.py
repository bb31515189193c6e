"""Small syntax pieces of the pattern language: JSON paths for messages, `numeric`
expressions, `wildcard` strings and `anything-but` operands (ESM-SPEC §3.2-§3.3, DESIGN §5).

Each parser validates its operand and returns a compiled value; every problem raises
`FilterPatternError("<json path>: <rule broken>")`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, NoReturn

from esm.errors import FilterPatternError

# EventBridge accepts numeric operands between -1.0e9 and +1.0e9 [EB content filtering].
NUMERIC_LIMIT = 1.0e9
_LOWER_OPS = {">": False, ">=": True}
_UPPER_OPS = {"<": False, "<=": True}
_PLAIN_KEY = re.compile(r"[A-Za-z_$][A-Za-z0-9_$\-]*\Z")


def fail(path: str, rule: str) -> NoReturn:
    """Raise the one error type invalid patterns produce, naming where and what."""
    raise FilterPatternError(f"{path}: {rule}")


def child_path(path: str, key: str) -> str:
    """`$.detail` + `state` -> `$.detail.state`; odd keys are quoted: `$["a b"]`."""
    if _PLAIN_KEY.match(key):
        return f"{path}.{key}"
    return f'{path}["{key}"]'


def kind(value: Any) -> str:
    """The JSON type name of a value, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def is_number(value: Any) -> bool:
    """JSON numbers only: Python's bool is an int, but `true` is not a number."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_finite(number: float) -> bool:
    """`math.isfinite`, but False (not OverflowError) for an int too large for a double:
    JSON numbers are doubles, so `1` followed by 400 zeros is as out of range as 1e400."""
    try:
        return math.isfinite(number)
    except OverflowError:
        return False


@dataclass(frozen=True, slots=True)
class NumericRange:
    """A numeric interval; None is an open end. Matches JSON numbers only (ESM-SPEC §3.3)."""

    low: float | None
    low_inclusive: bool
    high: float | None
    high_inclusive: bool


def parse_numeric(operand: Any, path: str) -> float | NumericRange:
    """`["=", n]`, `[op, n]` or `[lower-op, a, upper-op, b]` with a < b [EB content filtering].

    Returns the number itself for `=`, since equality compares by value (DESIGN §5).
    """
    if not isinstance(operand, list) or len(operand) not in (2, 4):
        fail(path, "numeric takes [operator, number] or [operator, number, operator, number]")
    ops, nums = operand[0::2], operand[1::2]
    for index, (op, num) in enumerate(zip(ops, nums, strict=True)):
        if op not in ("=", *_LOWER_OPS, *_UPPER_OPS):
            fail(f"{path}[{2 * index}]", f"unknown numeric operator {op!r}; expected one of "
                                         "=, <, <=, >, >=")
        _check_operand(num, f"{path}[{2 * index + 1}]")
    if "=" in ops:
        if len(ops) != 1:
            fail(path, "\"=\" cannot be combined with another numeric operator")
        return nums[0]  # type: ignore[no-any-return]
    return _numeric_range(ops, nums, path)


def _check_operand(num: Any, path: str) -> None:
    if not is_number(num):
        fail(path, f"numeric operands must be numbers, got {kind(num)}")
    if not is_finite(num) or abs(num) > NUMERIC_LIMIT:
        fail(path, f"numeric operands must lie between -1e9 and 1e9, got {num!r}")


def _numeric_range(ops: list[str], nums: list[float], path: str) -> NumericRange:
    """`[op, n]`, or a range written lower bound first: `[">"|">=", a, "<"|"<=", b]`."""
    if len(ops) == 1:
        if ops[0] in _LOWER_OPS:
            return NumericRange(nums[0], _LOWER_OPS[ops[0]], None, False)
        return NumericRange(None, False, nums[0], _UPPER_OPS[ops[0]])
    if ops[0] not in _LOWER_OPS or ops[1] not in _UPPER_OPS:
        fail(path, "a numeric range is written [\">\" or \">=\", lower, \"<\" or \"<=\", "
                   f"upper], got operators {ops[0]!r} then {ops[1]!r}")
    low, high = nums
    if low >= high:
        fail(path, f"the lower bound {low!r} must be less than the upper bound {high!r}")
    return NumericRange(low, _LOWER_OPS[ops[0]], high, _UPPER_OPS[ops[1]])


def wildcard_regex(text: str, path: str) -> re.Pattern[str]:
    """`*` matches any run of characters; `\\*` is a literal star, `\\\\` a literal
    backslash; any other escape and consecutive `**` are invalid [EB wildcard]."""
    parts: list[str] = []
    literal: list[str] = []
    index, previous_star = 0, False
    while index < len(text):
        char = text[index]
        if char == "\\":
            nxt = text[index + 1: index + 2]
            if nxt not in ("*", "\\"):
                fail(path, f"invalid escape at character {index} of wildcard {text!r}: only "
                           "\\* and \\\\ may be escaped")
            literal.append(nxt)
            index, previous_star = index + 2, False
            continue
        if char == "*":
            if previous_star:
                fail(path, f"consecutive wildcard characters at character {index} of {text!r}")
            parts.append(re.escape("".join(literal)))
            parts.append(".*")
            literal, previous_star = [], True
        else:
            literal.append(char)
            previous_star = False
        index += 1
    parts.append(re.escape("".join(literal)))
    return re.compile("".join(parts), re.DOTALL)


@dataclass(frozen=True, slots=True)
class AnythingBut:
    """One `anything-but`: a value or list, or a prefix, suffix, equals-ignore-case or
    wildcard form. It rejects matching strings; other values pass (DESIGN §5)."""

    strings: frozenset[str] = frozenset()
    numbers: frozenset[float] = frozenset()
    prefixes: tuple[str, ...] = ()
    suffixes: tuple[str, ...] = ()
    equals_ci: frozenset[str] = frozenset()
    wildcard: re.Pattern[str] | None = None


def parse_anything_but(operand: Any, path: str) -> AnythingBut:
    """Value: a string or a number; list: non-empty, all strings or all numbers; object: exactly one
    of prefix, suffix, equals-ignore-case, wildcard [EB operators]."""
    if isinstance(operand, dict):
        return _anything_but_object(operand, path)
    values = operand if isinstance(operand, list) else [operand]
    if isinstance(operand, list) and not operand:
        fail(path, "anything-but needs at least one value")
    strings: set[str] = set()
    numbers: set[float] = set()
    for index, value in enumerate(values):
        where = f"{path}[{index}]" if isinstance(operand, list) else path
        if isinstance(value, str):
            strings.add(value)
        elif is_number(value) and is_finite(value):
            numbers.add(value)
        elif is_number(value):
            fail(where, "anything-but numbers must be finite")
        else:
            fail(where, f"anything-but takes strings or numbers, got {kind(value)}")
    if strings and numbers:
        fail(path, "an anything-but list must hold only strings or only numbers")
    return AnythingBut(strings=frozenset(strings), numbers=frozenset(numbers))


def _anything_but_object(operand: dict[str, Any], path: str) -> AnythingBut:
    allowed = ("prefix", "suffix", "equals-ignore-case", "wildcard")
    if len(operand) != 1 or next(iter(operand)) not in allowed:
        fail(path, f"anything-but object must hold exactly one of {', '.join(allowed)}, "
                   f"got {sorted(operand)}")
    (name, value), = operand.items()
    where = child_path(path, name)
    if name in ("prefix", "suffix"):
        affixes = tuple(_string_list(value, where, name))
        if not all(affixes):
            fail(where, f"anything-but {name} strings must not be empty")
        if name == "prefix":
            return AnythingBut(prefixes=affixes)
        return AnythingBut(suffixes=affixes)
    texts = _string_list(value, where, name)
    if name == "equals-ignore-case":
        return AnythingBut(equals_ci=frozenset(t.lower() for t in texts))
    regexes = [wildcard_regex(t, where) for t in texts]
    joined = "|".join(f"(?:{r.pattern})" for r in regexes)
    return AnythingBut(wildcard=re.compile(joined, re.DOTALL))


def _string_list(value: Any, path: str, name: str) -> list[str]:
    texts = value if isinstance(value, list) else [value]
    if not texts or not all(isinstance(t, str) for t in texts):
        fail(path, f"anything-but {name} takes a string or a non-empty array of strings")
    return texts
