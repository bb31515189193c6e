"""Random filter patterns: shaped like EventBridge patterns (fields, leaf arrays, every
operator, `$or`, dotted keys), with operands that are sometimes right and sometimes not."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from tests.unit.fuzz.json_values import JSON_SCALARS, ODD_TEXT, json_values

_KEYS = st.one_of(st.sampled_from(["body", "value", "data", "a", "b", "a.b", "x.y.z", "$or",
                                   "eventName", "", ".", "a..b", "prefix", "numeric"]),
                  st.text(max_size=6))
_NUMBERS = st.one_of(st.integers(-(10**12), 10**12), st.floats(allow_nan=False),
                     st.sampled_from([10**400, -(10**400), 2**63, 1e9, -1e9, 0.1]))
_TEXT = st.one_of(ODD_TEXT, st.sampled_from(["*", "a*b", "**", "\\*", "\\", "a\\x", "*.*",
                                             "10.0.0.0/8", "::1/128", "1.2.3.4/33", "x/y"]))
_ANY = st.one_of(json_values(max_leaves=4), _NUMBERS, _TEXT)


def _operators() -> st.SearchStrategy[dict[str, Any]]:
    numeric = st.lists(st.one_of(st.sampled_from(["=", "<", "<=", ">", ">=", "!"]), _NUMBERS,
                                 _ANY), min_size=0, max_size=5)
    operands = {
        "prefix": st.one_of(_TEXT, st.fixed_dictionaries({"equals-ignore-case": _TEXT}), _ANY),
        "suffix": st.one_of(_TEXT, st.fixed_dictionaries({"equals-ignore-case": _TEXT}), _ANY),
        "equals-ignore-case": st.one_of(_TEXT, _ANY),
        "anything-but": st.one_of(_TEXT, _NUMBERS, st.lists(st.one_of(_TEXT, _NUMBERS)),
                                  st.dictionaries(st.sampled_from(
                                      ["prefix", "suffix", "equals-ignore-case", "wildcard",
                                       "x"]), st.one_of(_TEXT, st.lists(_TEXT)), max_size=2),
                                  _ANY),
        "numeric": st.one_of(numeric, _ANY),
        "exists": st.one_of(st.booleans(), _ANY),
        "cidr": st.one_of(_TEXT, _ANY),
        "wildcard": st.one_of(_TEXT, _ANY),
    }
    single = st.one_of([st.fixed_dictionaries({name: values})
                        for name, values in operands.items()])
    return st.one_of(single, st.dictionaries(st.sampled_from(sorted(operands)), _ANY,
                                             max_size=3))


_LEAF = st.lists(st.one_of(JSON_SCALARS, _NUMBERS, _TEXT, _operators(), _ANY), max_size=4)


_FIELD_NAMES = st.sampled_from(["body", "value", "data", "a", "b", "a.b", "x.y", "eventName",
                                "prefix", "numeric", "dynamodb"])
_SAFE_NUMBERS = st.one_of(st.integers(-(10**9), 10**9), st.floats(-1e9, 1e9))


def _valid_operators() -> st.SearchStrategy[dict[str, Any]]:
    text = st.text(max_size=8)
    affix = st.one_of(text.filter(bool), st.builds(
        lambda t: {"equals-ignore-case": t}, text.filter(bool)))
    bounds = st.lists(_SAFE_NUMBERS, min_size=2, max_size=2, unique=True).map(sorted)
    numeric = st.one_of(
        st.tuples(st.sampled_from(["=", "<", "<=", ">", ">="]), _SAFE_NUMBERS).map(list),
        st.builds(lambda b, lo, hi: [lo, b[0], hi, b[1]], bounds, st.sampled_from([">", ">="]),
                  st.sampled_from(["<", "<="])))
    anything_but = st.one_of(text, _SAFE_NUMBERS, st.lists(text, min_size=1, max_size=3),
                             st.lists(_SAFE_NUMBERS, min_size=1, max_size=3),
                             st.builds(lambda k, t: {k: t}, st.sampled_from(
                                 ["prefix", "suffix", "equals-ignore-case"]), text.filter(bool)))
    return st.one_of(
        st.builds(lambda v: {"prefix": v}, affix), st.builds(lambda v: {"suffix": v}, affix),
        st.builds(lambda v: {"equals-ignore-case": v}, text),
        st.builds(lambda v: {"anything-but": v}, anything_but),
        st.builds(lambda v: {"numeric": v}, numeric),
        st.builds(lambda v: {"exists": v}, st.booleans()),
        st.builds(lambda v: {"cidr": v}, st.sampled_from(["10.0.0.0/8", "192.168.1.0/24",
                                                          "::1/128", "2001:db8::/32"])),
        st.builds(lambda v: {"wildcard": v}, st.from_regex(r"[a-c]{0,3}(\*[a-c]{1,3}){0,3}\*?",
                                                           fullmatch=True)))


def valid_patterns(max_leaves: int = 12) -> st.SearchStrategy[dict[str, Any]]:
    """Patterns compile_pattern accepts: fields, leaves of every kind, nesting, `$or`."""
    leaf = st.lists(st.one_of(st.text(max_size=8), _SAFE_NUMBERS, st.booleans(), st.none(),
                              _valid_operators()), min_size=1, max_size=3)

    def extend(inner: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[Any]:
        fields = st.dictionaries(_FIELD_NAMES, st.one_of(leaf, inner), min_size=1, max_size=3)
        ors = st.lists(inner, min_size=2, max_size=3)
        return st.one_of(fields, st.builds(lambda f, o: {**f, "$or": o}, fields, ors))

    return st.recursive(st.dictionaries(_FIELD_NAMES, leaf, min_size=1, max_size=3), extend,
                        max_leaves=max_leaves)


def pattern_objects(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """A pattern as a Python object: mostly valid, else a JSON object of fields with odd
    operands, else anything at all."""
    objects = st.recursive(
        st.dictionaries(_KEYS, _LEAF, min_size=1, max_size=3),
        lambda inner: st.one_of(
            st.dictionaries(_KEYS, st.one_of(_LEAF, inner), min_size=0, max_size=3),
            st.builds(lambda alts: {"$or": alts}, st.lists(inner, max_size=3)),
            st.dictionaries(_KEYS, _ANY, max_size=2)),
        max_leaves=max_leaves)
    valid = valid_patterns(max_leaves)
    return st.one_of(valid, valid, objects, _ANY)
