"""Property: any configuration is accepted (exit 0) or refused with exit 2 and one
`FILE: path.to.key: problem` line per problem; never exit 1, never a traceback.

Documents start valid for every source type (with every target and destination type) and
are mutated over every key the schema knows (`config_documents`); raw YAML text and bytes
cover what a data document cannot hold (syntax errors, huge literals, tags, encodings).
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.fuzz.config_documents import (
    DESTINATION_SETTINGS,
    SOURCE_SETTINGS,
    TARGET_SETTINGS,
    Path,
    baseline,
    mutated,
    slots,
)
from tests.unit.fuzz.schema_values import scalar_type
from tests.unit.fuzz.validate_runner import (
    assert_accepted_or_refused_clearly,
    dotted,
    run_validate,
)


@st.composite
def documents(draw: st.DrawFn, source: str) -> tuple[Any, list[tuple[str, Path, Any]]]:
    target = draw(st.sampled_from(sorted(TARGET_SETTINGS)))
    destination = draw(st.none() | st.sampled_from(sorted(DESTINATION_SETTINGS)))
    return draw(mutated(baseline(source, target, destination)))


@pytest.mark.parametrize("source", sorted(SOURCE_SETTINGS))
def test_every_baseline_document_is_valid(source: str) -> None:
    # The mutations start from valid documents, so the deep rules are reached.
    for target in TARGET_SETTINGS:
        result = run_validate(baseline(source, target, None))
        assert result.exit_code == 0, result.stderr


@pytest.mark.parametrize("source", sorted(SOURCE_SETTINGS))
@given(data=st.data())
def test_mutated_configuration_is_accepted_or_refused_with_key_paths(
        source: str, data: st.DataObject) -> None:
    # Given a valid document for this source type, mutated over the schema's keys
    document, done = data.draw(documents(source))
    # When `esm validate` checks it
    result = run_validate(document)
    # Then it is accepted, or refused with one FILE: problem line per problem
    assert_accepted_or_refused_clearly(result)
    if not done or done[-1][0] not in ("set", "garbage"):
        return
    _, path, value = done[-1]
    slot = next((s for s in slots(document) if s.path == path), None)
    # And a mapping given where a scalar belongs is reported at that key's own path
    if slot is not None and scalar_type(slot.tp) and isinstance(value, dict):
        assert result.exit_code == 2
        assert any(p.startswith(f"{dotted(path)}: ") for p in result.problems), (
            path, result.problems)
    # And a secret's value is never printed (STYLE rule 9)
    if slot is not None and slot.meta.get("secret") and isinstance(value, str) and len(
            value.strip()) >= 8:
        assert value not in result.stderr + result.stdout


_FRAGMENTS = st.sampled_from([
    "9" * 5000, "-" + "1" * 4400, "2001-13-45", "2024-02-30 10:00:00", "!!int x", "!!float y",
    "!!binary '@@@'", "!!timestamp nope", "!!python/object:os.system ''", "&a [*a]", "*nope",
    "[" * 200, "{" * 200, "? [a, b]", "? {a: 1}", "<<: *x", "<<: [1]", "\t", "%YAML 9.9",
    "--- \n...", "\x00", "\ufeff", "\x85", "\ud800", "'unclosed", "|\n bad", ": :", "- - -",
    "!!set {a, b}", "!!omap [a]", "!!pairs [[1]]", "1e99999", ".nan", ".inf", "0o777", "0x",
    '"\\UFFFFFFFF"', '"\\ud800"', "0x" + "F" * 4000, "1:" * 3000 + "1", "%TAG !e! x:",
])


@given(base=st.sampled_from(sorted(SOURCE_SETTINGS)), cuts=st.lists(
    st.tuples(st.floats(0, 1), _FRAGMENTS | st.text(max_size=6)), min_size=1, max_size=3))
def test_mangled_yaml_text_is_accepted_or_refused_with_a_location(
        base: str, cuts: list[tuple[float, str]]) -> None:
    # Given a valid file's text with fragments spliced in at random places
    text = yaml.safe_dump(baseline(base, "http", "file"))
    for where, fragment in cuts:
        index = int(where * len(text))
        text = text[:index] + fragment + text[index:]
    # Then validate reports it (a syntax error names FILE:LINE:COLUMN) or accepts it
    assert_accepted_or_refused_clearly(run_validate(text))


@given(raw=st.binary(max_size=200) | st.builds(
    lambda head, tail: head + tail,
    st.sampled_from([b"mappings:\n- name: \xff\xfe\n", b"\xef\xbb\xbfmappings: []\n",
                     b"\xff\xfe" + "mappings: []".encode("utf-16-le"), b"a: \x80"]),
    st.binary(max_size=20)))
def test_arbitrary_bytes_are_accepted_or_refused(raw: bytes) -> None:
    assert_accepted_or_refused_clearly(run_validate(raw))
