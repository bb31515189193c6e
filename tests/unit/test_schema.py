"""esm.config.schema: strict YAML data → frozen dataclass conversion, every problem reported."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import pytest

from esm.config.schema import SecretStr, Substituted, build, join


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int = field(default=9092, metadata={"min": 1, "max": 65535})


@dataclass(frozen=True, slots=True)
class Settings:
    bootstrap_servers: tuple[str, ...] = field(metadata={"min_items": 1})
    batch_size: int = field(default=100, metadata={"min": 1, "max": 10000})
    retries: int = field(default=-1, metadata={"min": 0, "max": 10000, "allow": (-1,)})
    window_seconds: float = field(default=0.0, metadata={"min": 0, "max": 300})
    tls: bool = False
    group: str | None = None
    position: Literal["TRIM_HORIZON", "LATEST"] = "TRIM_HORIZON"
    mode: str = field(default="fast", metadata={"choices": ["fast", "safe"]})
    name: str = field(default="a", metadata={"pattern": r"[a-z]+", "max_length": 5})
    headers: dict[str, str] = field(default_factory=dict)
    tags: list[int] = field(default_factory=list)
    endpoint: Endpoint | None = None
    password: str | None = field(default=None, metadata={"secret": True})
    extra: Any = None


def problems_of(data: object) -> list[str]:
    instance, problems = build(Settings, data, "mappings[0].source")
    assert (instance is None) == bool(problems)
    return problems


def test_builds_frozen_instance_with_defaults_for_missing_keys() -> None:
    # Given only the required key
    # When building
    instance, problems = build(Settings, {"bootstrap_servers": ["k:9092"]}, "s")
    # Then defaults fill the rest and lists become tuples where declared
    assert problems == []
    assert instance == Settings(bootstrap_servers=("k:9092",))


def test_converts_every_supported_type() -> None:
    data = {"bootstrap_servers": ["a:1", "b:2"], "batch_size": 10, "window_seconds": 2,
            "tls": True, "group": "g", "position": "LATEST", "mode": "safe", "name": "abc",
            "headers": {"x": "y"}, "tags": [1, 2], "endpoint": {"host": "h"},
            "extra": {"anything": [1]}}
    instance, problems = build(Settings, data, "s")
    assert problems == []
    assert instance.window_seconds == 2.0 and isinstance(instance.window_seconds, float)
    assert instance.endpoint == Endpoint(host="h", port=9092)
    assert instance.headers == {"x": "y"} and instance.tags == [1, 2]
    assert instance.extra == {"anything": [1]}


def test_unknown_key_suggests_the_closest_known_key() -> None:
    problems = problems_of({"bootstrap_servers": ["a:1"], "bach_size": 5})
    assert problems == [
        "mappings[0].source: unknown key 'bach_size' (did you mean 'batch_size'?)"]


def test_missing_required_key_is_named() -> None:
    assert problems_of({}) == ["mappings[0].source: missing required key 'bootstrap_servers'"]


def test_bool_is_not_an_integer_and_strings_are_not_numbers() -> None:
    problems = problems_of({"bootstrap_servers": ["a:1"], "batch_size": True,
                            "window_seconds": "ten"})
    assert problems == [
        "mappings[0].source.batch_size: must be an integer, got boolean true",
        "mappings[0].source.window_seconds: must be a number, got string 'ten'"]


def test_integer_field_rejects_a_float() -> None:
    problems = problems_of({"bootstrap_servers": ["a:1"], "batch_size": 1.5})
    assert problems == ["mappings[0].source.batch_size: must be an integer, got number 1.5"]


def test_out_of_range_names_the_range_with_an_en_dash() -> None:
    problems = problems_of({"bootstrap_servers": ["a:1"], "batch_size": 0})
    assert problems == ["mappings[0].source.batch_size: must be 1–10000, got 0"]


def test_allow_admits_a_value_outside_the_range_and_is_named_in_the_message() -> None:
    ok, _ = build(Settings, {"bootstrap_servers": ["a:1"], "retries": -1}, "s")
    problems = problems_of({"bootstrap_servers": ["a:1"], "retries": -2})
    assert ok is not None and ok.retries == -1
    assert problems == ["mappings[0].source.retries: must be -1 or 0–10000, got -2"]


def test_path_of_a_list_item_uses_brackets() -> None:
    problems = problems_of({"bootstrap_servers": ["a:1", 9092]})
    assert problems == ["mappings[0].source.bootstrap_servers[1]: must be a string, got "
                        "integer 9092 (quote it in YAML to make it a string)"]


def test_nested_dataclass_problems_carry_the_dotted_path() -> None:
    problems = problems_of({"bootstrap_servers": ["a:1"], "endpoint": {"port": 0}})
    assert problems == ["mappings[0].source.endpoint: missing required key 'host'",
                        "mappings[0].source.endpoint.port: must be 1–65535, got 0"]


def test_literal_mismatch_suggests_the_close_value() -> None:
    problems = problems_of({"bootstrap_servers": ["a:1"], "position": "TRIM_HORIZN"})
    assert problems == ["mappings[0].source.position: must be one of 'TRIM_HORIZON', "
                        "'LATEST', got string 'TRIM_HORIZN' (did you mean 'TRIM_HORIZON'?)"]


def test_choices_pattern_length_and_item_count_rules() -> None:
    problems = problems_of({"bootstrap_servers": [], "mode": "slow", "name": "ABC"})
    assert problems == [
        "mappings[0].source.bootstrap_servers: must have at least 1 item, got 0",
        "mappings[0].source.mode: must be one of 'fast', 'safe', got string 'slow'",
        "mappings[0].source.name: must match [a-z]+, got string 'ABC'"]
    assert problems_of({"bootstrap_servers": ["a"], "name": "abcdef"}) == [
        "mappings[0].source.name: must have at most 5 characters, got 6"]


def test_reports_every_problem_at_once() -> None:
    problems = problems_of({"batch_size": "x", "tls": "yes", "tags": ["1"], "headers": [],
                            "group": 5, "typo": 1})
    assert len(problems) == 7  # unknown key, missing key, and five wrong types


def test_non_mapping_data_is_a_problem_not_a_crash() -> None:
    assert problems_of(["a"]) == ["mappings[0].source: must be a mapping, got list"]


def test_optional_field_accepts_null() -> None:
    instance, problems = build(Settings, {"bootstrap_servers": ["a"], "group": None}, "s")
    assert problems == [] and instance.group is None


def test_secret_value_never_appears_in_messages_or_repr() -> None:
    # Given a secret of the wrong type, and later a valid one
    problems = problems_of({"bootstrap_servers": ["a"], "password": 123456789})
    instance, _ = build(Settings, {"bootstrap_servers": ["a"], "password": "hunter22"}, "s")
    # Then neither the message nor the repr shows it, while the value still works
    assert problems == ["mappings[0].source.password: must be a string, got integer "
                        "(quote it in YAML to make it a string)"]
    assert "hunter22" not in repr(instance)
    assert isinstance(instance.password, SecretStr) and instance.password == "hunter22"


def test_substituted_strings_are_parsed_for_numeric_and_bool_fields() -> None:
    data = {"bootstrap_servers": [Substituted("k:9092")], "batch_size": Substituted("50"),
            "window_seconds": Substituted("0.5"), "tls": Substituted("true"),
            "position": Substituted("LATEST")}
    instance, problems = build(Settings, data, "s")
    assert problems == []
    assert (instance.batch_size, instance.window_seconds, instance.tls) == (50, 0.5, True)
    assert instance.position == "LATEST" and type(instance.bootstrap_servers[0]) is str


def test_substituted_text_that_is_not_a_number_is_a_type_problem() -> None:
    problems = problems_of({"bootstrap_servers": ["a"], "batch_size": Substituted("lots")})
    assert problems == ["mappings[0].source.batch_size: must be an integer, got string 'lots'"]


@dataclass(frozen=True, slots=True)
class Checked:
    low: int = 0
    high: int = 1

    def __post_init__(self) -> None:
        if self.low > self.high:
            raise ValueError("low must not exceed high")


def test_post_init_value_error_becomes_a_problem() -> None:
    instance, problems = build(Checked, {"low": 5}, "x")
    assert instance is None and problems == ["x: low must not exceed high"]


@pytest.mark.parametrize("key, path", [
    ("url", "source.url"), ("on_failure.type", "source.on_failure.type"),
    ("\r", "source['\\r']"), ("a b", "source['a b']"), ("", "source['']"),
    ("x\u2028y", "source['x\\u2028y']"), ("[0]", "source['[0]']"),
])
def test_a_key_path_quotes_keys_that_would_break_or_blur_the_line(key: str, path: str) -> None:
    # One problem a line: a key holding a line break, a space or brackets is quoted
    assert join("source", key) == path


def test_a_problem_under_an_odd_key_stays_on_one_line() -> None:
    _, problems = build(Settings, {"bootstrap_servers": ["b:1"], "headers": {"\r\n": 5}}, "m")
    assert problems == ["m.headers['\\r\\n']: must be a string, got integer 5 (quote it in "
                        "YAML to make it a string)"]


@dataclass(frozen=True, slots=True)
class Unbounded:
    stamp: float | None = None  # no min / max (like a Kafka starting_position_timestamp)


@pytest.mark.parametrize("value, shown", [(float("nan"), "nan"), (float("inf"), "inf"),
                                          (float("-inf"), "-inf")])
def test_a_number_field_refuses_nan_and_infinity_even_without_bounds(
        value: float, shown: str) -> None:
    # Given YAML's .nan / .inf where a number belongs (a range check cannot catch NaN)
    _, problems = build(Unbounded, {"stamp": value}, "source")
    # Then it is a problem, not a value that crashes the connector later (int(nan))
    assert problems == [f"source.stamp: must be a finite number, got number {shown}"]
