"""Values for configuration keys, derived from the schema dataclasses themselves.

`field_values(tp, meta)` gives, for a field of type `tp` with `esm.config.schema` metadata `meta`,
values that keep the field's rules (so that what lies behind them is reached) mixed with
values of every wrong kind: nulls, other types, huge numbers and strings, nested garbage,
and the odd things YAML can hold (bytes, dates, sets). A key added to any schema is fuzzed
without touching this module.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, Union

from hypothesis import strategies as st

from tests.unit.fuzz.json_values import HUGE_NUMBERS, HUGE_TEXT, SCALARS, json_values

# Scalars YAML's safe loader can build besides JSON's: `!!binary`, dates and timestamps.
_YAML_EXTRAS = st.one_of(st.binary(max_size=8), st.dates(), st.datetimes(
    min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30)))
GARBAGE: st.SearchStrategy[Any] = st.one_of(
    SCALARS, HUGE_NUMBERS, HUGE_TEXT, _YAML_EXTRAS,
    json_values(st.one_of(SCALARS, _YAML_EXTRAS), max_leaves=8),
    st.sets(st.integers(), max_size=3),
    st.dictionaries(st.one_of(st.integers(), st.none(), st.booleans()), SCALARS, min_size=1,
                    max_size=2))


def field_values(tp: Any, meta: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    """Valid values for the field (twice as likely) or garbage."""
    valid = valid_values(tp, meta)
    return st.one_of(valid, valid, GARBAGE)


def valid_values(tp: Any, meta: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    """Values the schema accepts for a field of type `tp` (cross-field rules aside)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any or tp is object:
        return json_values(max_leaves=6)
    if origin in (Union, types.UnionType):
        return st.one_of([st.none() if a is type(None) else valid_values(a, meta)
                          for a in args])
    if origin is Literal:
        return st.sampled_from(args)
    if origin in (tuple, list):
        return st.lists(valid_values(args[0] if args else Any, {}),
                        min_size=meta.get("min_items", 0), max_size=meta.get("max_items", 3))
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        value_type = args[1] if len(args) == 2 else Any
        return st.dictionaries(st.text(max_size=8), valid_values(value_type, {}), max_size=3)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return dataclass_documents(tp)
    if "choices" in meta:
        return st.sampled_from(list(meta["choices"]))
    return _scalar_values(tp, meta)


def _scalar_values(tp: Any, meta: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    low, high = meta.get("min"), meta.get("max")
    extra = st.sampled_from(list(meta["allow"])) if meta.get("allow") else st.nothing()
    if tp is bool:
        return st.booleans()
    if tp is int:
        return st.one_of(extra, st.integers(low, high))
    if tp is float:
        whole = st.integers(math.ceil(low) if low is not None else None,
                            math.floor(high) if high is not None else None)
        return st.one_of(extra, whole, st.floats(low, high, allow_nan=False,
                                                 allow_infinity=False))
    if tp is str and "pattern" in meta:
        return st.from_regex(meta["pattern"], fullmatch=True)
    if tp is str:
        return st.text(min_size=meta.get("min_length", 0), max_size=meta.get("max_length", 30))
    return GARBAGE


def dataclass_documents(cls: type) -> st.SearchStrategy[dict[str, Any]]:
    """YAML data for dataclass `cls`: every required key, any of the optional ones."""
    hints = typing.get_type_hints(cls)
    required, optional = {}, {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        values = field_values(hints[f.name], f.metadata)
        missing = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        (required if missing else optional)[f.name] = values
    return st.fixed_dictionaries(required, optional=optional)


def scalar_type(tp: Any) -> bool:
    """True when every value the field accepts is a scalar (or null): a mapping given
    there must be reported at the key's own path."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        return all(scalar_type(a) for a in args)
    return origin is Literal or tp in (str, int, float, bool, type(None))
