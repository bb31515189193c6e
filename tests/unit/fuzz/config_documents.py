"""Random configuration documents: a valid one per source type, then a few mutations.

Starting from a valid mapping keeps most of a document valid, so the rules that run only
once the keys are right (source rules, connector hooks, destinations) see each odd value.
Mutations: set any key the schema knows (including absent ones) to a valid or wrong value,
delete a key, misspell a key, add an unknown key, or replace any node with garbage.
`slots(document)` lists the keys the schema knows at the document's current shape: the
top-level sections, each mapping's keys, and the `Settings` of the connector types named.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Union

from hypothesis import strategies as st

from esm.config import loading as config
from esm.config import mapping as mapping_config
from esm.registry import DESTINATIONS, SOURCES, TARGETS, import_object
from tests.unit.fuzz.schema_values import GARBAGE, field_values

Path = tuple[str | int, ...]

SOURCE_SETTINGS: dict[str, dict[str, Any]] = {
    "memory": {"records": ['{"a": 1}', "plain"]},
    "memory_queue": {"lanes": 2},
    "redis_streams": {"streams": ["orders"], "url": "redis://127.0.0.1:6379/0"},
    "kafka": {"bootstrap_servers": ["127.0.0.1:9092"], "topics": ["orders"],
              "consumer_group_id": "esm-orders"},
    "sqs": {"queue_url": "http://127.0.0.1:9324/000000000000/orders", "region": "us-east-1"},
    "dynamodb_streams": {
        "stream_arn": "arn:aws:dynamodb:us-east-1:000000000000:table/t/stream/2024-01-01",
        "starting_position": "TRIM_HORIZON", "region": "us-east-1"},
    "kinesis": {"stream_name": "clicks", "starting_position": "LATEST",
                "region": "us-east-1"},
}
TARGET_SETTINGS: dict[str, dict[str, Any]] = {
    "python": {"handler": "esm.demo.handlers:handle"},
    "http": {"url": "http://127.0.0.1:8080/invoke", "timeout_seconds": 10},
    "lambda": {"function_name": "orders", "region": "us-east-1"},
}
DESTINATION_SETTINGS: dict[str, dict[str, Any]] = {
    "file": {"path": "dead-letters.jsonl"},
    "redis_stream": {"stream": "dlq"},
    "kafka": {"bootstrap_servers": ["127.0.0.1:9092"], "topic": "dlq"},
    "sqs": {"queue_url": "http://127.0.0.1:9324/000000000000/dlq", "region": "us-east-1"},
    "sns": {"topic_arn": "arn:aws:sns:us-east-1:000000000000:dlq", "region": "us-east-1"},
    "s3": {"bucket": "dead-letters", "region": "us-east-1"},
}
_TABLES = {"source": SOURCES, "target": TARGETS, "on_failure": DESTINATIONS}


@dataclass(frozen=True)
class Slot:
    """A key the schema knows: where it is, its type and its rules."""

    path: Path
    tp: Any
    meta: typing.Mapping[str, Any]
    values: st.SearchStrategy[Any] | None = None  # instead of the type's own values


def baseline(source: str, target: str, destination: str | None) -> dict[str, Any]:
    """A valid one-mapping document (some destinations do not suit some sources: then the
    document is refused, which is one of the two allowed outcomes)."""
    mapping: dict[str, Any] = {
        "name": f"m-{source}", "source": {"type": source, **SOURCE_SETTINGS[source]},
        "target": {"type": target, **TARGET_SETTINGS[target]}}
    if destination is not None:
        mapping["destination_config"] = {
            "on_failure": {"type": destination, **DESTINATION_SETTINGS[destination]}}
        if source == "sqs":
            mapping["source"]["max_receive_count"] = 5
    return {"mappings": [mapping], "logging": {"level": "INFO"}}


def slots(document: Any) -> list[Slot]:
    """Every key the schema knows for `document` as it is now."""
    found = list(_dataclass_slots(config._File, ()))
    mappings = document.get("mappings") if isinstance(document, dict) else None
    for index, raw in enumerate(mappings if isinstance(mappings, list) else ()):
        found += _mapping_slots(raw, ("mappings", index))
    return found


def _mapping_slots(raw: Any, path: Path) -> list[Slot]:
    found = list(_dataclass_slots(mapping_config._Mapping, path))
    found += _dataclass_slots(mapping_config._FilterCriteria, path + ("filter_criteria",))
    found.append(Slot(path + ("destination_config", "on_failure", "include_payload"), bool,
                      {}))
    if not isinstance(raw, dict):
        return found
    destinations = raw.get("destination_config")
    connectors = {"source": (raw.get("source"), path + ("source",)),
                  "target": (raw.get("target"), path + ("target",)),
                  "on_failure": (destinations.get("on_failure") if isinstance(
                      destinations, dict) else None,
                      path + ("destination_config", "on_failure"))}
    for kind, (spec, where) in connectors.items():
        found.append(Slot(where + ("type",), str, {}, _type_names(sorted(_TABLES[kind]))))
        type_name = spec.get("type") if isinstance(spec, dict) else None
        if isinstance(type_name, str) and type_name in _TABLES[kind]:
            settings = import_object(_TABLES[kind][type_name]).Settings  # type: ignore[attr-defined]
            found += _dataclass_slots(settings, where)
    return found


def _type_names(known: list[str]) -> st.SearchStrategy[Any]:
    """A connector `type`: a known name, a near miss, a `module:Class` reference (real,
    missing or malformed), or garbage."""
    return st.one_of(
        st.sampled_from(known), st.sampled_from(known).map(lambda name: name[:-1]),
        st.from_regex(r"\.{0,2}[a-z_]{0,4}(\.[a-z]{0,3})?:[A-Za-z_]{0,4}", fullmatch=True),
        st.sampled_from(["esm.demo.handlers:handle", "os:path", "esm.registry:SOURCES"]),
        GARBAGE)


def _dataclass_slots(cls: type, path: Path) -> Iterator[Slot]:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        tp = hints[f.name]
        yield Slot(path + (f.name,), tp, f.metadata)
        nested = _dataclass_in(tp)
        if nested is not None:
            yield from _dataclass_slots(nested, path + (f.name,))


def _dataclass_in(tp: Any) -> type | None:
    """The dataclass a field holds (directly or as `X | None`), if any."""
    candidates = typing.get_args(tp) if typing.get_origin(tp) in (
        Union, types.UnionType) else (tp,)
    for candidate in candidates:
        if dataclasses.is_dataclass(candidate) and isinstance(candidate, type):
            return candidate
    return None


# ---- mutations -----------------------------------------------------------------------

def _typo(key: str, draw: st.DrawFn) -> str:
    if not key:
        return "x"
    index = draw(st.integers(0, len(key) - 1))
    return draw(st.sampled_from([
        key[:index] + key[index + 1:], key[:index] + key[index] * 2 + key[index:],
        key.upper(), key.replace("_", "-"), key + "s", key[:index] + "x" + key[index + 1:]]))


def _nodes(data: Any, path: Path = ()) -> Iterator[tuple[Path, Any]]:
    """Every node of the document with its path, the root first."""
    yield path, data
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(key, str | int):
                yield from _nodes(value, path + (key,))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _nodes(value, path + (index,))


def put(document: Any, path: Path, value: Any) -> Any:
    """`document` with `value` at `path`, creating (or replacing with) mappings on the way;
    list indexes past the end append."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(head, int) and isinstance(document, list):
        if head < len(document):
            document[head] = put(document[head], rest, value)
        else:
            document.append(put({}, rest, value))
        return document
    container = document if isinstance(document, dict) else {}
    container[head] = put(container.get(head), rest, value)
    return container


@st.composite
def mutated(draw: st.DrawFn, document: dict[str, Any],
            max_mutations: int = 4) -> tuple[Any, list[tuple[str, Path, Any]]]:
    """`document` after 0..max_mutations mutations, and what was done."""
    data: Any = copy.deepcopy(document)
    done: list[tuple[str, Path, Any]] = []
    for _ in range(draw(st.integers(0, max_mutations))):
        kind = draw(st.sampled_from(["set", "set", "set", "delete", "typo", "unknown",
                                     "garbage"]))
        if kind == "set":
            slot = draw(st.sampled_from(slots(data)))
            values = slot.values if slot.values is not None else field_values(slot.tp, slot.meta)
            value = draw(values)
            data = put(data, slot.path, value)
            done.append(("set", slot.path, value))
            continue
        path, node = draw(st.sampled_from(list(_nodes(data))))
        if kind == "garbage":
            value = draw(GARBAGE)
            data = put(data, path, value)
            done.append(("garbage", path, value))
        elif isinstance(node, dict) and kind == "unknown":
            key = draw(st.text(max_size=12))
            node[key] = draw(GARBAGE)
            done.append(("unknown", path + (key,), node[key]))
        elif isinstance(node, dict) and node and kind in ("delete", "typo"):
            key = draw(st.sampled_from(sorted(node, key=repr)))
            value = node.pop(key)
            if kind == "typo" and isinstance(key, str):
                node[_typo(key, draw)] = value
            done.append((kind, path + (key,), value))
    return data, done
