"""Strict conversion of plain YAML data into frozen dataclasses, reporting every problem.

`build(cls, data, path)` walks `cls`'s fields and returns `(instance, [])`, or
`(None, problems)` with one `path: problem` string per problem found, never stopping at the
first (STYLE rule 4). Supported field types: str, int (a bool is not an int), float (ints
accepted), bool, `X | None`, `Literal[...]`, `tuple[X, ...]`, `list[X]`, `dict[str, X]`,
`Any` and nested dataclasses. Missing keys take the field's default.

Rules live in `dataclasses.field(metadata=...)`, so connectors declare them without
importing this module:
    min / max        inclusive numeric range; `allow` lists extra values outside it (-1)
    choices          the allowed values
    min_items / max_items, min_length / max_length, pattern (a full-match regex)
    secret           the value never appears in a message or a repr
    doc              one line of help

Strings that came from `${VAR}` substitution arrive as `Substituted`; for int, float and
bool fields they are parsed, since an environment variable can only hold text.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, Union

from esm.registry import did_you_mean

_INVALID: Any = object()  # "no value": a problem was already reported for it
_TRUE, _FALSE = ("true", "yes", "on"), ("false", "no", "off")


class Substituted(str):
    """A string produced by `${VAR}` substitution; numeric and bool fields parse it."""

    __slots__ = ()


class SecretStr(str):
    """A secret string: works as the string itself, but its repr hides the value."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'***'"


def build(cls: type, data: object, path: str) -> tuple[Any | None, list[str]]:
    """An instance of dataclass `cls` from `data`, or None with every problem found."""
    problems: list[str] = []
    value = _dataclass(cls, data, path, problems)
    return (None, problems) if problems or value is _INVALID else (value, [])


def join(path: str, key: str | int) -> str:
    """`mappings[0]` + `source` → `mappings[0].source`; ints give `[n]`. A key that is
    empty, or holds a space, a line break, a quote, a bracket or another unprintable
    character is quoted, `source['a b']`: problems are printed one a line."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    if not _PLAIN_KEY.fullmatch(key) or not key.isprintable():
        return f"{path}[{key!r}]"
    return f"{path}.{key}" if path else key


_PLAIN_KEY = re.compile(r"[^\s\[\]'\"]+")


def describe(value: object, secret: bool = False) -> str:
    """`string 'ten'`, `integer 5`, `list` ...: how a value is named in a message."""
    kind = _kind(value)
    if secret or isinstance(value, list | dict | tuple) or value is None:
        return kind
    if isinstance(value, str):
        text = repr(str(value))
    else:
        text = str(value).lower() if isinstance(value, bool) else str(value)
    return f"{kind} {text[:80]}{'…' if len(text) > 80 else ''}"


def _kind(value: object) -> str:
    names = {bool: "boolean", int: "integer", float: "number", list: "list", dict: "mapping"}
    if value is None:
        return "null"
    if isinstance(value, str):
        return "string"
    return names.get(type(value), type(value).__name__)


def _dataclass(cls: type, data: object, path: str, problems: list[str]) -> Any:
    if not isinstance(data, Mapping):
        problems.append(at(path, f"must be a mapping, got {describe(data)}"))
        return _INVALID
    try:
        hints = typing.get_type_hints(cls)
    except Exception as exc:  # a connector's broken annotations: report, do not crash
        problems.append(at(path, f"cannot read the fields of {cls.__name__}: {exc}"))
        return _INVALID
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs: dict[str, Any] = {}
    before = len(problems)
    problems += _unknown_keys(data, sorted(fields), path)
    for name, spec in fields.items():
        if name in data:
            kwargs[name] = _field(hints[name], data[name], join(path, name), spec.metadata,
                                  problems)
        elif spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
            problems.append(at(path, f"missing required key {name!r}"))
    if len(problems) > before:
        return _INVALID
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:  # the class's own __post_init__ checks
        problems.append(at(path, str(exc)))
        return _INVALID


def _unknown_keys(data: Mapping[Any, Any], known: list[str], path: str) -> list[str]:
    """Misspelled options fail loudly instead of being ignored (STYLE: kombu's lesson)."""
    problems = []
    for key in data:
        if not isinstance(key, str):
            problems.append(at(path, f"key {key!r} must be a string"))
        elif key not in known:
            problems.append(at(path, f"unknown key {key!r}{did_you_mean(key, known)}"))
    return problems


def at(path: str, problem: str) -> str:
    """`path: problem`, or just the problem at the top of a document."""
    return f"{path}: {problem}" if path else problem


def _field(tp: Any, value: object, path: str, meta: Mapping[str, Any],
           problems: list[str]) -> Any:
    secret = bool(meta.get("secret"))
    converted = _convert(tp, value, path, secret, problems)
    if converted is _INVALID:
        return _INVALID
    problem = _rule_problem(converted, meta, secret)
    if problem:
        problems.append(f"{path}: {problem}")
        return _INVALID
    if secret and isinstance(converted, str):
        return SecretStr(converted)
    return converted


def _convert(tp: Any, value: object, path: str, secret: bool, problems: list[str]) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any or tp is object:
        return value
    if origin in (Union, types.UnionType):
        return _union(args, value, path, secret, problems)
    if origin is Literal:
        return _literal(args, value, path, secret, problems)
    if origin in (tuple, list):
        return _sequence(tp, origin, args, value, path, problems)
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        return _mapping(args, value, path, problems)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _dataclass(tp, value, path, problems)
    if tp in (str, int, float, bool):
        return _scalar(tp, value, path, secret, problems)
    problems.append(f"{path}: unsupported field type {tp!r}")
    return _INVALID


_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "a boolean"}


def _scalar(tp: type, value: object, path: str, secret: bool, problems: list[str]) -> Any:
    if isinstance(value, Substituted) and tp is not str:
        value = _parse_substituted(tp, value)
    if tp is str and isinstance(value, str):
        return str(value)
    if tp is bool and isinstance(value, bool):
        return value
    if tp in (int, float) and isinstance(value, int) and not isinstance(value, bool):
        return tp(value)
    if tp is float and isinstance(value, float):
        if math.isfinite(value):
            return value
        # YAML's .nan / .inf: no setting means them, and NaN slips through range checks.
        problems.append(f"{path}: must be a finite number, got {describe(value, secret)}")
        return _INVALID
    hint = " (quote it in YAML to make it a string)" if tp is str and isinstance(
        value, int | float | bool) else ""
    problems.append(f"{path}: must be {_TYPE_NAMES[tp]}, got {describe(value, secret)}{hint}")
    return _INVALID


def _parse_substituted(tp: type, text: str) -> object:
    """An environment value as int / float / bool, or the text itself when it is not one."""
    lowered = text.strip().lower()
    if tp is bool:
        return True if lowered in _TRUE else False if lowered in _FALSE else text
    try:
        return int(lowered) if tp is int else float(lowered)
    except ValueError:
        return text


def _union(args: tuple[Any, ...], value: object, path: str, secret: bool,
           problems: list[str]) -> Any:
    if value is None and type(None) in args:
        return None
    options = [a for a in args if a is not type(None)]
    for option in options[:-1]:  # try each quietly; the last one reports its problems
        attempt: list[str] = []
        converted = _convert(option, value, path, secret, attempt)
        if not attempt and converted is not _INVALID:
            return converted
    return _convert(options[-1], value, path, secret, problems)


def _literal(args: tuple[Any, ...], value: object, path: str, secret: bool,
             problems: list[str]) -> Any:
    if isinstance(value, str):
        value = str(value)  # a Substituted string matches a plain one
    for allowed in args:
        if value == allowed and type(value) is type(allowed):
            return allowed
    hint = "" if secret else _close(str(value), [str(a) for a in args])
    problems.append(f"{path}: must be one of {', '.join(map(repr, args))}, "
                    f"got {describe(value, secret)}{hint}")
    return _INVALID


def _sequence(tp: Any, origin: type, args: tuple[Any, ...], value: object, path: str,
              problems: list[str]) -> Any:
    if not isinstance(value, list | tuple):
        problems.append(f"{path}: must be a list, got {describe(value)}")
        return _INVALID
    if origin is tuple and args and (len(args) != 2 or args[1] is not Ellipsis):
        problems.append(f"{path}: unsupported field type {tp!r} (use tuple[X, ...])")
        return _INVALID
    item_type = args[0] if args else Any
    items = [_convert(item_type, item, join(path, i), False, problems)
             for i, item in enumerate(value)]
    if any(item is _INVALID for item in items):
        return _INVALID
    return tuple(items) if origin is tuple else items


def _mapping(args: tuple[Any, ...], value: object, path: str, problems: list[str]) -> Any:
    if not isinstance(value, Mapping):
        problems.append(f"{path}: must be a mapping, got {describe(value)}")
        return _INVALID
    value_type = args[1] if len(args) == 2 else Any
    out: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            problems.append(f"{path}: key {key!r} must be a string")
            continue
        out[key] = _convert(value_type, item, join(path, key), False, problems)
    return _INVALID if any(v is _INVALID for v in out.values()) else out


def _rule_problem(value: Any, meta: Mapping[str, Any], secret: bool) -> str | None:
    """The first metadata rule `value` breaks, as a message; None when it keeps them all."""
    shown = describe(value, secret)
    if "choices" in meta and value is not None and value not in meta["choices"]:
        choices = [str(c) for c in meta["choices"]]
        return (f"must be one of {', '.join(map(repr, meta['choices']))}, got {shown}"
                f"{'' if secret else _close(str(value), choices)}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _range_problem(value, meta)
    if isinstance(value, list | tuple | dict):
        return _size_problem(len(value), meta, "min_items", "max_items", "item")
    if isinstance(value, str):
        problem = _size_problem(len(value), meta, "min_length", "max_length", "character")
        if problem is None and "pattern" in meta and not re.fullmatch(meta["pattern"], value):
            problem = f"must match {meta['pattern']}, got {shown}"
        return problem
    return None


def _close(word: str, choices: list[str]) -> str:
    hint = did_you_mean(word, choices)
    return hint if "did you mean" in hint else ""


def _range_problem(value: float, meta: Mapping[str, Any]) -> str | None:
    low, high, allow = meta.get("min"), meta.get("max"), tuple(meta.get("allow", ()))
    if value in allow or ((low is None or value >= low) and (high is None or value <= high)):
        return None
    if low is not None and high is not None:
        bounds = f"{low}–{high}"
    else:
        bounds = f"≥ {low}" if low is not None else f"≤ {high}"
    extra = "".join(f"{a} or " for a in allow)
    return f"must be {extra}{bounds}, got {value}"


def _size_problem(size: int, meta: Mapping[str, Any], low_key: str, high_key: str,
                  unit: str) -> str | None:
    low, high = meta.get(low_key), meta.get(high_key)
    if low is not None and size < low:
        return f"must have at least {low} {unit}{'s' if low != 1 else ''}, got {size}"
    if high is not None and size > high:
        return f"must have at most {high} {unit}{'s' if high != 1 else ''}, got {size}"
    return None
