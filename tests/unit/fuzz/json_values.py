"""Strategies for JSON values and awkward text, shared by the property-based tests."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hypothesis import strategies as st

# Text that trips decoders and encoders: lone surrogates, NUL, BOM, right-to-left marks,
# astral characters, JSON- and YAML-looking fragments, substitution syntax.
_ODD_TEXT = st.sampled_from([
    "", " ", "\x00", "\ud800", "a\udfffb", "\ufeff{}", "\u202e", "😀", "\U0010ffff",
    "null", "true", "{", "[1,", '{"a": 1}', "- x", "? y", "&a", "*a", "!!binary", "%YAML",
    "${", "${NOPE}", "$${x}", "${HOME:-d}", "1e999", "-0", "0x1F", "NaN", "~",
])
ODD_TEXT = st.one_of(_ODD_TEXT, st.text(max_size=40),
                     st.builds(lambda a, b: a + b, _ODD_TEXT, st.text(max_size=10)))
# Large, but cheap enough to run many times in a quick profile.
HUGE_TEXT = st.builds(lambda unit, times: unit * times, st.sampled_from(["x", "é", "\ud800"]),
                      st.sampled_from([1000, 20_000, 70_000]))
HUGE_NUMBERS = st.sampled_from([2**63, -(2**63) - 1, 2**64, 10**300, 1e308, -1e308,
                                float("inf"), float("-inf"), float("nan"), 5e-324])

SCALARS: st.SearchStrategy[Any] = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), ODD_TEXT)
# What a JSON parser can produce (no NaN, no lone surrogates from a strict encoder).
JSON_SCALARS: st.SearchStrategy[Any] = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20))


def json_values(scalars: st.SearchStrategy[Any] = JSON_SCALARS,
                max_leaves: int = 20) -> st.SearchStrategy[Any]:
    """Nested lists and objects over `scalars`."""
    return st.recursive(scalars, lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=max_leaves)


def deep_nesting(depth: int,
                 keys: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[Any]:
    """A value nested `depth` levels deep: in lists only, in objects only (under `keys`),
    or mixed (parsers and walkers that recurse hit their limits here)."""
    def nest(leaf: Any, key: str, kinds: list[bool]) -> Any:
        for as_list in kinds:
            leaf = [leaf] if as_list else {key: leaf}
        return leaf

    levels = st.one_of(st.just([True] * depth), st.just([False] * depth),
                       st.lists(st.booleans(), min_size=depth, max_size=depth))
    return st.builds(nest, JSON_SCALARS, st.just("a") if keys is None else keys, levels)


@contextmanager
def production_stack(headroom: int = 950) -> Iterator[None]:
    """Run with about the stack a worker thread has under Python's default recursion limit
    (1000 frames). Hypothesis raises the limit while a test runs, which would hide code
    that recurses once per level of a deep document (orjson parses 1024 levels)."""
    depth, frame = 0, sys._getframe()
    while frame is not None:
        depth, frame = depth + 1, frame.f_back
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(depth + headroom)
    try:
        yield
    finally:
        sys.setrecursionlimit(old)
