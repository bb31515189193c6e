"""The structure of a pattern: parse the JSON, check its shape, and build a tree of
`PatternNode`s (object levels) whose leaves are validated `LeafSpec`s (ESM-SPEC §3.3,
DESIGN §5).

- the pattern is a JSON object of at most 4096 characters (ESM-SPEC §1.2);
- a field maps to an array (a leaf) or a non-empty object (a nested level);
- `$or` takes an array of at least two non-empty objects, at any level, nested freely;
- a dotted key `"a.b"` is the nested path a -> b; when two keys name one path the last wins,
  as with duplicate keys, which `json.loads` already resolves that way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from esm.filtering.operators import LeafSpec, parse_leaf
from esm.filtering.syntax import child_path, fail, kind

# ESM-SPEC §1.2: FilterCriteria.Filters[].Pattern is a string of at most 4096 characters.
MAX_PATTERN_CHARS = 4096
# Not an AWS rule: bounds recursion when compiling and matching (4096 chars allow ~700).
MAX_DEPTH = 64
OR_KEY = "$or"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _parse(pattern: Any) -> dict[str, Any]:
    """A JSON string or a dict, at most 4096 characters, whose top level is an object."""
    if isinstance(pattern, str):
        text = pattern
        try:
            tree = json.loads(pattern, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            fail("$", f"the pattern is not valid JSON: {exc}")
    elif isinstance(pattern, dict):
        tree = pattern
        try:
            text = json.dumps(pattern, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            fail("$", f"the pattern is not JSON-serialisable: {exc}")
    else:
        fail("$", f"a pattern must be a JSON string or an object, got {type(pattern).__name__}")
    if len(text) > MAX_PATTERN_CHARS:
        fail("$", f"the pattern is {len(text)} characters long; the limit is "
                  f"{MAX_PATTERN_CHARS}")
    if not isinstance(tree, dict):
        fail("$", f"the pattern must be a JSON object, got {kind(tree)}")
    return tree


@dataclass(slots=True)
class PatternNode:
    """An object level of the pattern: ANDed fields plus ANDed `$or` groups."""

    fields: dict[str, PatternNode | LeafSpec] = field(default_factory=dict)
    ors: list[list[PatternNode]] = field(default_factory=list)


def _fill(node: PatternNode, obj: dict[str, Any], path: str, depth: int,
          top_level: bool = False) -> None:
    if depth > MAX_DEPTH:
        fail(path, f"the pattern nests deeper than {MAX_DEPTH} objects")
    if not obj and not top_level:
        fail(path, "empty objects are not allowed; name at least one field")
    for key, value in obj.items():
        if not isinstance(key, str):
            fail(path, f"field names must be strings, got {key!r}")
        if key == OR_KEY:
            node.ors.append(_or_group(value, child_path(path, key), depth))
        else:
            _add_field(node, key.split("."), value, path, depth)


def _add_field(node: PatternNode, segments: list[str], value: Any, path: str, depth: int) -> None:
    """Place `value` at the dotted path; the last definition of a path wins (DESIGN §5)."""
    head, rest = segments[0], segments[1:]
    where = child_path(path, head)
    if not rest and not isinstance(value, dict):
        node.fields[head] = parse_leaf(value, where)
        return
    child = node.fields.get(head)
    if not isinstance(child, PatternNode):
        child = node.fields[head] = PatternNode()
    if rest:
        _add_field(child, rest, value, where, depth + 1)
    else:
        _fill(child, value, where, depth + 1)


def _or_group(value: Any, path: str, depth: int) -> list[PatternNode]:
    """`$or` takes an array of at least two non-empty objects [EB operators]."""
    if not isinstance(value, list) or len(value) < 2:
        fail(path, f"$or takes an array of at least two objects, got {_describe(value)}")
    group: list[PatternNode] = []
    for index, alternative in enumerate(value):
        where = f"{path}[{index}]"
        if not isinstance(alternative, dict):
            fail(where, f"each $or alternative must be an object, got {kind(alternative)}")
        node = PatternNode()
        _fill(node, alternative, where, depth + 1)
        group.append(node)
    return group


def _describe(value: Any) -> str:
    return f"an array of {len(value)}" if isinstance(value, list) else kind(value)


def parse_pattern(pattern: Any) -> tuple[dict[str, Any], PatternNode]:
    """The parsed JSON and its validated tree; raises FilterPatternError."""
    tree = _parse(pattern)
    root = PatternNode()
    _fill(root, tree, "$", 0, top_level=True)
    return tree, root
