"""Kafka's format-mismatch rule for filters (ESM-SPEC §3.4, checklist 31).

For Kafka (and MQ) a pattern's clause on the data key (`value`) applies only when the
record's value and the clause agree in format: a JSON object value with an object clause,
a plain-string value with a leaf (array) clause. In any other case — the formats differ,
or the value is not UTF-8 and so absent from the filter view — AWS "filters on the other
metadata properties only": the data clause is ignored, it does not drop the record.

`compile_lenient_filters` compiles each pattern twice, with and without its data clause,
and picks per record. SQS and Kinesis instead drop on a mismatch, which the plain matcher
already does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from esm.errors import FilterPatternError
from esm.filtering import MATCH_ALL, Matcher, compile_filters, compile_pattern

_ABSENT = object()


def compile_lenient_filters(patterns: Iterable[str | dict[str, Any]], data_key: str) -> Matcher:
    """OR of patterns whose `data_key` clause is ignored on a format mismatch."""
    patterns = list(patterns)
    compile_filters(patterns)  # validate all first, with the usual messages
    tests = [_lenient(pattern, data_key) for pattern in patterns]
    if not tests:
        return MATCH_ALL

    def match_any(document: Any) -> bool:
        return any(test(document) for test in tests)

    return Matcher(match_any, f"lenient on {data_key!r}: {len(tests)} pattern(s)")


def _lenient(pattern: str | dict[str, Any], data_key: str) -> Callable[[Any], bool]:
    tree = json.loads(pattern) if isinstance(pattern, str) else dict(pattern)
    clause = tree.get(data_key, _ABSENT)
    dotted = [k for k in tree if k.startswith(data_key + ".")]
    full = compile_pattern(tree).matches
    if clause is _ABSENT and not dotted:
        return full
    wants_object = isinstance(clause, dict) or bool(dotted)
    rest = {k: v for k, v in tree.items() if k != data_key and k not in dotted}
    try:
        metadata_only = compile_pattern(rest).matches if rest else MATCH_ALL.matches
    except FilterPatternError:  # e.g. only `$or` remained malformed without the clause
        metadata_only = MATCH_ALL.matches

    def test(document: Any) -> bool:
        value = document.get(data_key, _ABSENT) if type(document) is dict else _ABSENT
        if value is not _ABSENT and isinstance(value, dict) == wants_object:
            return full(document)
        return metadata_only(document)

    return test
