"""esm.config.loading: files, directories, environment substitution, top-level sections, YAML
errors and the all-problems-at-once report."""

from __future__ import annotations

from pathlib import Path

import pytest

from esm.config.loading import load_config, validate_files
from esm.config.types import LoggingConfig, ServerConfig
from esm.errors import ConfigError
from tests.unit.test_config_mapping import STREAM, TARGET, mapping_yaml, write


def named(name: str, extra: str = "") -> str:
    return mapping_yaml(extra).replace("name: m1", f"name: {name}")


def test_loads_a_file_with_default_sections(tmp_path: Path) -> None:
    file = write(tmp_path, "esm.yaml", named("orders"))
    config = load_config([file], {})
    assert [m.name for m in config.mappings] == ["orders"]
    assert config.mappings[0].source_file == file and config.files == (file,)
    assert config.server == ServerConfig() and config.logging == LoggingConfig()
    assert config.shutdown_timeout_seconds == 30.0


def test_top_level_sections_are_parsed(tmp_path: Path) -> None:
    file = write(tmp_path, "esm.yaml", named("m") + """\
server: {listen: "0.0.0.0:9200", auth_token: t0ken, enabled: false}
logging: {format: json, level: DEBUG}
shutdown_timeout_seconds: 12.5
""")
    config = load_config([file], {})
    assert config.server == ServerConfig("0.0.0.0:9200", "t0ken", False)
    assert config.logging == LoggingConfig("json", "DEBUG")
    assert config.shutdown_timeout_seconds == 12.5
    assert "t0ken" not in repr(config)


def test_unknown_top_level_key_suggests_the_right_one(tmp_path: Path) -> None:
    file = write(tmp_path, "esm.yaml", named("m") + "sever: {}\n")
    assert validate_files([file], {}) == [
        f"{file}: unknown key 'sever' (did you mean 'server'?)"]


def test_bad_section_values_are_reported(tmp_path: Path) -> None:
    file = write(tmp_path, "esm.yaml", named("m") + """\
server: {listen: nowhere}
logging: {format: xml}
shutdown_timeout_seconds: 0
""")
    assert validate_files([file], {}) == [
        f"{file}: server.listen: must match \\S*:\\d{{1,5}}, got string 'nowhere'",
        f"{file}: logging.format: must be one of 'text', 'json', got string 'xml'",
        f"{file}: shutdown_timeout_seconds: must be 0.1–3600, got 0.0"]


@pytest.mark.parametrize("section", ["server", "logging", "shutdown_timeout_seconds"])
def test_a_null_top_level_section_is_a_problem_not_a_crash(tmp_path: Path, section: str) -> None:
    # Given a section left empty (`logging:` with every line under it commented out)
    file = write(tmp_path, "esm.yaml", named("m") + f"{section}:\n")
    # Then it is reported like any other wrong type, with the file and the key
    kind = "a number" if section == "shutdown_timeout_seconds" else "a mapping"
    assert validate_files([file], {}) == [f"{file}: {section}: must be {kind}, got null"]


def test_directory_loads_yaml_and_yml_files_in_sorted_order(tmp_path: Path) -> None:
    # Given a directory with two mapping files and an unrelated file
    write(tmp_path, "20-b.yml", named("second"))
    write(tmp_path, "10-a.yaml", named("first"))
    write(tmp_path, "README.txt", "not config")
    # When loading the directory
    config = load_config([str(tmp_path)], {})
    # Then both files load, in name order, and mappings are concatenated
    assert [m.name for m in config.mappings] == ["first", "second"]
    assert [Path(f).name for f in config.files] == ["10-a.yaml", "20-b.yml"]


def test_empty_directory_and_missing_path_are_problems(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = str(tmp_path / "nope.yaml")
    assert validate_files([str(empty), missing], {}) == [
        f"{empty}: directory holds no *.yaml or *.yml file",
        f"{missing}: no such file or directory"]


def test_sections_may_be_set_in_only_one_file(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", named("a") + "server: {listen: ':1'}\n")
    second = write(tmp_path, "b.yaml", named("b") + "server: {listen: ':2'}\n")
    assert validate_files([first, second], {}) == [
        f"{second}: server: already set in {first}; set it only once"]


def test_sections_in_different_files_combine(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", named("a") + "logging: {format: json}\n")
    second = write(tmp_path, "b.yaml", "server: {listen: ':2'}\n")
    config = load_config([first, second], {})
    assert config.logging.format == "json" and config.server.listen == ":2"


def test_mapping_names_are_unique_across_files(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", named("orders"))
    second = write(tmp_path, "b.yaml", named("orders"))
    assert validate_files([first, second], {}) == [
        f"{second}: mapping name 'orders' is used twice (also in {first})"]


def test_no_mappings_at_all_is_a_problem(tmp_path: Path) -> None:
    file = write(tmp_path, "esm.yaml", "logging: {level: INFO}\n")
    assert validate_files([file], {}) == [
        f"{file}: no mappings configured (add a `mappings:` list)"]


def test_env_substitution_with_default_and_escape(tmp_path: Path) -> None:
    # Given references with and without defaults, an escape, and a numeric value
    file = write(tmp_path, "esm.yaml", f"""\
mappings:
  - name: ${{NAME}}
    source: {{type: {STREAM}, stream: "${{STREAM:-fallback}}"}}
    target: {{type: {TARGET}, url: "http://$${{not-a-var}}/${{HOST}}"}}
    batch_size: ${{BATCH}}
    maximum_batching_window_in_seconds: ${{WINDOW:-1}}
""")
    # When loading with an environment
    config = load_config([file], {"NAME": "from-env", "HOST": "h:80", "BATCH": "25"})
    mapping = config.mappings[0]
    # Then values are substituted and typed
    assert mapping.name == "from-env" and mapping.source.settings.stream == "fallback"
    assert mapping.target.settings.url == "http://${not-a-var}/h:80"
    assert (mapping.batch_size, mapping.maximum_batching_window_in_seconds) == (25, 1.0)


def test_default_applies_to_an_empty_variable(tmp_path: Path) -> None:
    file = write(tmp_path, "esm.yaml", mapping_yaml(source=f"{{type: {STREAM}, "
                                                    "stream: '${S:-dflt}'}"))
    assert load_config([file], {"S": ""}).mappings[0].source.settings.stream == "dflt"


def test_unset_variable_is_named_with_its_path(tmp_path: Path) -> None:
    file = write(tmp_path, "esm.yaml", mapping_yaml(source=f"{{type: {STREAM}, "
                                                    "stream: 'k-${KAFKA_TOPIC}'}"))
    assert validate_files([file], {}) == [
        f"{file}: mappings[0].source.stream: environment variable 'KAFKA_TOPIC' is not set "
        "(write ${KAFKA_TOPIC:-default} to give a default)"]


def test_malformed_reference_is_a_problem(tmp_path: Path) -> None:
    file = write(tmp_path, "esm.yaml", mapping_yaml(source=f"{{type: {STREAM}, "
                                                    "stream: '${1BAD}'}"))
    problems = validate_files([file], {})
    assert problems == [f"{file}: mappings[0].source.stream: malformed ${{ reference: write "
                        "${NAME} or ${NAME:-default} (or $${ for a literal ${)"]


def test_yaml_syntax_error_gives_file_line_and_column(tmp_path: Path) -> None:
    file = write(tmp_path, "esm.yaml", "mappings:\n  - name: a\n    source: {type: [x\n")
    problems = validate_files([file], {})
    assert len(problems) == 1 and problems[0].startswith(f"{file}:4:1: YAML syntax error: ")


def test_yaml_error_does_not_echo_the_offending_line(tmp_path: Path) -> None:
    file = write(tmp_path, "esm.yaml", "server: {auth_token: s3cr3t-value: oops}\n")
    problems = validate_files([file], {})
    assert len(problems) == 1 and "s3cr3t-value" not in problems[0]
    assert problems[0].startswith(f"{file}:1:")


def test_a_character_yaml_forbids_is_one_problem_line_with_its_place(tmp_path: Path) -> None:
    # Given a control character YAML does not allow, on the second line
    file = write(tmp_path, "esm.yaml", "mappings:\n  - name: a\x08b\n")
    # Then the problem names the file, line and column on one line (the report prints
    # one problem a line)
    assert validate_files([file], {}) == [
        f"{file}:2:12: YAML syntax error: unacceptable character #x0008: "
        "special characters are not allowed"]


@pytest.mark.parametrize("value, problem", [
    ("!!int x", "cannot read this value as !!int"),
    ("!!float .1.1", "cannot read this value as !!float"),
    ("!!bool maybe", "cannot read this value as !!bool"),
    ("!!timestamp soon", "cannot read this value as !!timestamp"),
    ("!!set [1]", "expected a mapping node, but found sequence"),
    ("2024-13-45", "cannot read this value as !!timestamp (quote it to make it a string)"),
    ("9" * 5000, "cannot read this value as !!int (quote it to make it a string)"),
    # Hex, octal and base 60 have no digit limit, but such an int cannot be printed later
    ("0x" + "F" * 4000, "cannot read this value as !!int (quote it to make it a string)"),
    ("1:" * 3000 + "1", "cannot read this value as !!int (quote it to make it a string)"),
])
def test_a_value_yaml_cannot_build_is_a_problem_with_its_place(
        tmp_path: Path, value: str, problem: str) -> None:
    # Given a scalar whose tag (written, or implied by its look) PyYAML fails to build
    file = write(tmp_path, "esm.yaml", f"mappings:\n  - name: {value}\n")
    # Then it is a YAML problem at its line and column, without echoing the value
    assert validate_files([file], {}) == [f"{file}:2:11: YAML syntax error: {problem}"]


def test_yaml_nested_too_deeply_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    file = write(tmp_path, "esm.yaml", "mappings: " + "[" * 5000 + "]" * 5000 + "\n")
    assert validate_files([file], {}) == [
        f"{file}:1:110: YAML syntax error: nested deeper than 100 levels"]


def test_a_yaml_alias_inside_its_own_anchor_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    # Given an alias to the node that encloses it (a cycle: it would never end)
    file = write(tmp_path, "esm.yaml", "mappings: &loop\n  - *loop\n")
    assert validate_files([file], {}) == [
        f"{file}:2:5: YAML syntax error: alias *loop refers to a node that encloses it"]


def test_yaml_aliases_expanding_past_100000_values_are_a_problem_not_a_hang(
        tmp_path: Path) -> None:
    # Given "billion laughs": each anchor lists the previous one twice; the file is small,
    # but 18 levels already took seconds and 177 MB, 25 levels would exhaust memory
    lines = ["a0: &a0 [x, x]"] + [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]" for i in range(1, 30)]
    file = write(tmp_path, "esm.yaml", "\n".join(lines) + "\n")
    # Then it is refused where the expansion passes the limit (a15: 2 ** 17 - 1 values)
    assert validate_files([file], {}) == [
        f"{file}:16:6: YAML syntax error: expands to more than 100000 values through aliases"]


def test_a_yaml_version_number_of_thousands_of_digits_is_a_problem_not_a_crash(
        tmp_path: Path) -> None:
    # Given a %YAML directive whose version has more digits than int() reads from text
    file = write(tmp_path, "esm.yaml", "%YAML 1." + "1" * 5000 + "\n---\nmappings: []\n")
    # Then it is a YAML problem at the directive, not a ValueError traceback
    assert validate_files([file], {}) == [
        f"{file}:1:1: YAML syntax error: a %YAML version number of more than 4300 digits"]


@pytest.mark.parametrize("escape", ["\\UFFFFFFFF", "\\U00110000"])
def test_a_yaml_escape_beyond_unicode_is_a_problem_not_a_crash(
        tmp_path: Path, escape: str) -> None:
    # Given a double-quoted escape naming a code point past U+10FFFF (chr() refuses it)
    file = write(tmp_path, "esm.yaml", f'mappings:\n  - name: "a{escape}"\n')
    # Then it is a YAML problem at the scalar, not an OverflowError or ValueError
    assert validate_files([file], {}) == [
        f"{file}:2:11: YAML syntax error: an escape names no character (beyond \\U0010FFFF)"]


def test_duplicate_yaml_key_is_a_problem(tmp_path: Path) -> None:
    file = write(tmp_path, "esm.yaml", named("m", "batch_size: 5\nbatch_size: 6"))
    assert validate_files([file], {}) == [
        f"{file}:6:5: YAML syntax error: duplicate key 'batch_size'"]


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    file = write(tmp_path, "esm.yaml", "- a\n- b\n")
    assert validate_files([file], {}) == [f"{file}: must be a mapping, got list"]


def test_problems_from_several_files_and_mappings_are_reported_at_once(
        tmp_path: Path) -> None:
    # Given two files with several mistakes each
    first = write(tmp_path, "a.yaml", named("a", "bach_size: 5\nbatch_size: 0"))
    second = write(tmp_path, "b.yaml", named("b", "maximum_retry_attempts: ten\n") +
                   f"  - name: c\n    source: {{type: memroy}}\n    target: {{type: {TARGET}}}\n")
    # When loading
    with pytest.raises(ConfigError) as failure:
        load_config([first, second], {})
    # Then every problem is listed, each prefixed by its file
    assert failure.value.problems == [
        f"{first}: mappings[0]: unknown key 'bach_size' (did you mean 'batch_size'?)",
        f"{first}: mappings[0].batch_size: must be 1–10000, got 0",
        f"{second}: mappings[0].maximum_retry_attempts: must be an integer, got string 'ten'",
        f"{second}: mappings[1].source.type: unknown source type 'memroy' "
        "(did you mean 'memory'?)",
        f"{second}: mappings[1].target: missing required key 'url'"]
    assert str(failure.value) == "\n".join(failure.value.problems)


def test_mappings_must_be_a_list_of_mappings(tmp_path: Path) -> None:
    file = write(tmp_path, "esm.yaml", "mappings:\n  - just-a-string\n")
    assert validate_files([file], {}) == [
        f"{file}: mappings[0]: must be a mapping, got string 'just-a-string'"]
