"""esm.config.loading: the rules of one mapping (ESM-SPEC §1.2, checklist §8 items 1–10), checked
with small fake connectors registered through the `module:Class` escape hatch."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest

from esm.config.loading import load_config, validate_files
from esm.config.types import MappingConfig
from esm.interfaces import SourceTraits

HERE = "tests.unit.test_config_mapping"
STREAM = f"'{HERE}:FakeStreamSource'"
KAFKA = f"'{HERE}:FakeKafkaSource'"
QUEUE = f"'{HERE}:FakeQueueSource'"
FIFO = f"'{HERE}:FakeFifoSource'"
TARGET = f"'{HERE}:FakeTarget'"
DESTINATION = f"'{HERE}:FakeDestination'"


@dataclass(frozen=True, slots=True)
class StreamSettings:
    stream: str
    password: str | None = field(default=None, metadata={"secret": True})


class FakeStreamSource:
    """Like Kinesis / DynamoDB Streams: stream family, window needed above 10."""

    Settings: ClassVar[type] = StreamSettings
    traits: ClassVar[SourceTraits] = SourceTraits(family="stream",
                                                   supports_parallelization_factor=True)


class FakeKafkaSource:
    Settings: ClassVar[type] = StreamSettings
    traits: ClassVar[SourceTraits] = SourceTraits(
        family="stream", default_batching_window_seconds=0.5, window_required_above_10=False,
        caps_infinite_retries_with_destination=True, batch_info_key="KafkaBatchInfo")


@dataclass(frozen=True, slots=True)
class QueueSettings:
    queue: str
    max_deliveries: int | None = field(default=None, metadata={"min": 1, "max": 1000})


class FakeQueueSource:
    """Like SQS: queue family, default batch 10, no on-failure destination."""

    Settings: ClassVar[type] = QueueSettings
    traits: ClassVar[SourceTraits] = SourceTraits(
        family="queue", default_batch_size=10, supports_on_failure_destination=False)


class FakeFifoSource(FakeQueueSource):
    """A source with its own mapping check, as the SQS connector's FIFO batch-size rule."""

    @classmethod
    def check_mapping(cls, settings: QueueSettings, mapping_data: dict[str, Any]) -> list[str]:
        problems = []
        if settings.queue.endswith(".fifo") and mapping_data["batch_size"] > 10:
            problems.append(f"batch_size: must be 1–10 for a FIFO queue, "
                            f"got {mapping_data['batch_size']}")
        if mapping_data.get("enabled") is False:
            problems.append("a FIFO queue mapping cannot start disabled")
        return problems


@dataclass(frozen=True, slots=True)
class TargetSettings:
    url: str
    timeout_seconds: float = field(default=3.0, metadata={"min": 1, "max": 900})


class FakeTarget:
    Settings: ClassVar[type] = TargetSettings


@dataclass(frozen=True, slots=True)
class DestinationSettings:
    path: str


class FakeDestination:
    Settings: ClassVar[type] = DestinationSettings


def destination(key: str = "on_failure") -> str:
    return "destination_config: {" + key + ": {type: " + DESTINATION + ", path: d}}"


def write(directory: Path, name: str, text: str) -> str:
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def mapping_yaml(extra: str = "", source: str = f"{{type: {STREAM}, stream: s}}") -> str:
    body = textwrap.indent(textwrap.dedent(extra), "    ")
    return (f"mappings:\n  - name: m1\n    source: {source}\n"
            f"    target: {{type: {TARGET}, url: 'http://t'}}\n{body}")


def load_one(tmp_path: Path, extra: str = "", **kwargs: Any) -> MappingConfig:
    file = write(tmp_path, "esm.yaml", mapping_yaml(extra, **kwargs))
    return load_config([file], {}).mappings[0]


def problems_for(tmp_path: Path, extra: str = "", **kwargs: Any) -> list[str]:
    file = write(tmp_path, "esm.yaml", mapping_yaml(extra, **kwargs))
    return [p.removeprefix(f"{file}: ") for p in validate_files([file], {})]


def test_defaults_follow_aws_for_a_stream_source(tmp_path: Path) -> None:
    mapping = load_one(tmp_path)
    assert (mapping.batch_size, mapping.maximum_batching_window_in_seconds) == (100, 0.0)
    assert (mapping.maximum_retry_attempts, mapping.maximum_record_age_in_seconds) == (-1, -1)
    assert mapping.parallelization_factor == 1 and mapping.on_failure is None
    assert mapping.enabled and not mapping.bisect_batch_on_function_error
    assert mapping.target_timeout_seconds == 3.0 and mapping.filter_patterns == ()


def test_queue_source_defaults_to_batch_size_10_and_takes_max_deliveries(
        tmp_path: Path) -> None:
    mapping = load_one(tmp_path, source=f"{{type: {QUEUE}, queue: q, max_deliveries: 5}}")
    assert mapping.batch_size == 10 and mapping.max_deliveries == 5


def test_kafka_default_window_is_half_a_second(tmp_path: Path) -> None:
    mapping = load_one(tmp_path, source=f"{{type: {KAFKA}, stream: t}}")
    assert mapping.maximum_batching_window_in_seconds == 0.5


def test_full_mapping_is_parsed_into_mapping_config(tmp_path: Path) -> None:
    mapping = load_one(tmp_path, """\
        enabled: false
        batch_size: 500
        maximum_batching_window_in_seconds: 2
        function_response_types: [ReportBatchItemFailures]
        bisect_batch_on_function_error: true
        maximum_retry_attempts: 3
        maximum_record_age_in_seconds: 3600
        parallelization_factor: 4
        scaling_config: {maximum_concurrency: 20}
        retry_backoff: {initial_seconds: 0.5, maximum_seconds: 10, multiplier: 3, jitter: false}
        destination_config:
          on_failure: {type: DEST, path: dead.jsonl, include_payload: false}
        """.replace("DEST", DESTINATION))
    assert not mapping.enabled and mapping.batch_size == 500
    assert mapping.maximum_batching_window_in_seconds == 2.0
    assert mapping.report_batch_item_failures and mapping.bisect_batch_on_function_error
    assert (mapping.maximum_retry_attempts, mapping.maximum_record_age_in_seconds) == (3, 3600)
    assert mapping.parallelization_factor == 4 and mapping.maximum_concurrency == 20
    assert mapping.retry_backoff.multiplier == 3.0 and not mapping.retry_backoff.jitter
    assert mapping.on_failure is not None and mapping.on_failure.cls is FakeDestination
    assert mapping.on_failure.settings == DestinationSettings(path="dead.jsonl")
    assert mapping.include_payload is False


def test_include_payload_defaults_to_true(tmp_path: Path) -> None:
    mapping = load_one(tmp_path, destination())
    assert mapping.include_payload is True


def test_target_timeout_comes_from_target_settings(tmp_path: Path) -> None:
    file = write(tmp_path, "esm.yaml", mapping_yaml().replace(
        "url: 'http://t'", "url: 'http://t', timeout_seconds: 30"))
    assert load_config([file], {}).mappings[0].target_timeout_seconds == 30.0


@pytest.mark.parametrize("extra, problem", [
    ("batch_size: 0", "mappings[0].batch_size: must be 1–10000, got 0"),
    ("batch_size: 10001", "mappings[0].batch_size: must be 1–10000, got 10001"),
    ("maximum_batching_window_in_seconds: 301",
     "mappings[0].maximum_batching_window_in_seconds: must be 0–300, got 301.0"),
    ("maximum_batching_window_in_seconds: -1",
     "mappings[0].maximum_batching_window_in_seconds: must be 0–300, got -1.0"),
    ("maximum_retry_attempts: -2",
     "mappings[0].maximum_retry_attempts: must be -1 or 0–10000, got -2"),
    ("maximum_retry_attempts: 10001",
     "mappings[0].maximum_retry_attempts: must be -1 or 0–10000, got 10001"),
    ("maximum_record_age_in_seconds: 59",
     "mappings[0].maximum_record_age_in_seconds: must be -1 or 60–604800, got 59"),
    ("maximum_record_age_in_seconds: 604801",
     "mappings[0].maximum_record_age_in_seconds: must be -1 or 60–604800, got 604801"),
    ("parallelization_factor: 11", "mappings[0].parallelization_factor: must be 1–10, got 11"),
    ("scaling_config: {maximum_concurrency: 1}",
     "mappings[0].scaling_config.maximum_concurrency: must be 2–1000, got 1"),
    ("function_response_types: [ReportBatchItemFailures, ReportBatchItemFailures]",
     "mappings[0].function_response_types: must have at most 1 item, got 2"),
    ("retry_backoff: {multiplier: 0.5}",
     "mappings[0].retry_backoff.multiplier: must be 1–100, got 0.5"),
])
def test_aws_ranges_are_enforced(tmp_path: Path, extra: str, problem: str) -> None:
    assert problems_for(tmp_path, extra + "\nmaximum_batching_window_in_seconds: 1"
                        if "window" not in extra else extra) == [problem]


def test_function_response_types_only_accepts_report_batch_item_failures(
        tmp_path: Path) -> None:
    assert problems_for(tmp_path, "function_response_types: [ReportBatchItemFailure]") == [
        "mappings[0].function_response_types[0]: must be one of 'ReportBatchItemFailures', "
        "got string 'ReportBatchItemFailure' (did you mean 'ReportBatchItemFailures'?)"]


def test_fractional_window_is_accepted_as_an_esm_extension(tmp_path: Path) -> None:
    mapping = load_one(tmp_path, "maximum_batching_window_in_seconds: 0.25")
    assert mapping.maximum_batching_window_in_seconds == 0.25


def test_batch_size_above_10_without_window_gives_aws_text(tmp_path: Path) -> None:
    assert problems_for(tmp_path, "batch_size: 11") == [
        "mappings[0].maximum_batching_window_in_seconds: Maximum batch window in seconds "
        "must be greater than 0 if maximum batch size is greater than 10"]


def test_batch_size_above_10_with_window_is_fine(tmp_path: Path) -> None:
    assert load_one(tmp_path, "batch_size: 11\nmaximum_batching_window_in_seconds: 1"
                    ).batch_size == 11


def test_window_rule_does_not_apply_when_traits_say_so(tmp_path: Path) -> None:
    mapping = load_one(tmp_path, "batch_size: 500\nmaximum_batching_window_in_seconds: 0",
                       source=f"{{type: {KAFKA}, stream: t}}")
    assert (mapping.batch_size, mapping.maximum_batching_window_in_seconds) == (500, 0.0)


def test_source_check_mapping_hook_reports_under_the_mapping_path(tmp_path: Path) -> None:
    # Given a FIFO-like source whose own check caps the batch size at 10
    problems = problems_for(tmp_path, "batch_size: 20\nmaximum_batching_window_in_seconds: 1"
                            "\nenabled: false",
                            source=f"{{type: {FIFO}, queue: q.fifo}}")
    assert problems == ["mappings[0].batch_size: must be 1–10 for a FIFO queue, got 20",
                        "mappings[0]: a FIFO queue mapping cannot start disabled"]


def test_source_check_mapping_hook_sees_effective_batch_size(tmp_path: Path) -> None:
    mapping = load_one(tmp_path, source=f"{{type: {FIFO}, queue: q.fifo}}")
    assert mapping.batch_size == 10


def test_tumbling_windows_need_a_source_that_supports_them(tmp_path: Path) -> None:
    assert load_one(tmp_path, "tumbling_window_in_seconds: 0").tumbling_window_in_seconds == 0
    [problem] = problems_for(tmp_path, "tumbling_window_in_seconds: 60")
    assert problem.startswith("mappings[0].tumbling_window_in_seconds: applies only to "
                              "Kinesis, DynamoDB Streams and Kafka sources")


def test_on_success_destination_is_rejected_with_aws_text(tmp_path: Path) -> None:
    problems = problems_for(tmp_path, destination("on_success"))
    assert problems == ["mappings[0].destination_config.on_success: Unsupported "
                        "DestinationConfig parameter for given event source mapping type."]


def test_on_failure_destination_is_rejected_for_a_source_without_it(tmp_path: Path) -> None:
    problems = problems_for(tmp_path, destination(), source=f"{{type: {QUEUE}, queue: q}}")
    assert problems == ["mappings[0].destination_config.on_failure: Unsupported "
                        "DestinationConfig parameter for given event source mapping type. "
                        f"({QUEUE.strip(chr(39))!r} sources do not support on-failure "
                        "destinations)"]


def test_stream_only_settings_are_rejected_on_a_queue_source(tmp_path: Path) -> None:
    problems = problems_for(tmp_path, "maximum_retry_attempts: 3\nparallelization_factor: 2",
                            source=f"{{type: {QUEUE}, queue: q}}")
    assert [p.split(":")[0] for p in problems] == [
        "mappings[0].maximum_retry_attempts", "mappings[0].parallelization_factor"]
    assert all("applies only to stream sources" in p for p in problems)


def test_kafka_infinite_retries_with_destination_are_capped_at_10(tmp_path: Path) -> None:
    source = f"{{type: {KAFKA}, stream: t}}"
    capped = load_one(tmp_path, destination(), source=source)
    explicit = load_one(tmp_path, destination() + "\nmaximum_retry_attempts: 50", source=source)
    without = load_one(tmp_path, "", source=source)
    assert capped.maximum_retry_attempts == 10
    assert explicit.maximum_retry_attempts == 50 and without.maximum_retry_attempts == -1


def test_stream_source_keeps_infinite_retries_with_destination(tmp_path: Path) -> None:
    mapping = load_one(tmp_path, destination())
    assert mapping.maximum_retry_attempts == -1


def test_filter_pattern_given_as_mapping_is_stored_as_json(tmp_path: Path) -> None:
    mapping = load_one(tmp_path, """\
        filter_criteria:
          filters:
            - pattern: {body: {type: [order]}}
            - pattern: '{"body": {"amount": [{"numeric": [">", 10]}]}}'
        """)
    assert mapping.filter_patterns == ('{"body": {"type": ["order"]}}',
                                       '{"body": {"amount": [{"numeric": [">", 10]}]}}')


def test_invalid_filter_pattern_names_its_index(tmp_path: Path) -> None:
    problems = problems_for(tmp_path, """\
        filter_criteria:
          filters:
            - pattern: {body: {type: [order]}}
            - pattern: '{"body": {"type": "order"}}'
        """)
    assert len(problems) == 1
    assert problems[0].startswith("mappings[0].filter_criteria.filters[1].pattern: "
                                  "Invalid filter pattern definition: ")


def test_up_to_10_filters_are_allowed_and_11_are_not(tmp_path: Path) -> None:
    def filters(n: int) -> str:
        items = ", ".join("{pattern: {body: [" + str(i) + "]}}" for i in range(n))
        return "filter_criteria: {filters: [" + items + "]}"
    assert len(load_one(tmp_path, filters(10)).filter_patterns) == 10
    assert problems_for(tmp_path, filters(11)) == [
        "mappings[0].filter_criteria.filters: at most 10 filters are allowed (AWS's default "
        "quota is 5, raised up to 10), got 11"]


def test_pattern_longer_than_4096_characters_is_rejected(tmp_path: Path) -> None:
    long = "x" * 4100
    problems = problems_for(tmp_path, "filter_criteria: {filters: [{pattern: {body: ["
                            + long + "]}}]}")
    assert problems == ["mappings[0].filter_criteria.filters[0].pattern: must be at most "
                        "4096 characters, got 4114"]


def test_unknown_connector_type_suggests_the_registered_name(tmp_path: Path) -> None:
    problems = problems_for(tmp_path, source="{type: kafak, stream: s}")
    assert problems == ["mappings[0].source.type: unknown source type 'kafak' "
                        "(did you mean 'kafka'?)"]


@pytest.mark.parametrize("reference", [".:x", "..a:B", "_.:x", "a b:C", "a:B C", "a.:B"])
def test_a_malformed_module_reference_is_a_problem_not_a_crash(
        tmp_path: Path, reference: str) -> None:
    # Given a `module:Class` type whose module part is no absolute module name (a relative
    # import made importlib raise TypeError; odd names upset import hooks)
    problems = problems_for(tmp_path, source=f"{{type: '{reference}', stream: s}}")
    # Then it is refused before anything is imported
    assert problems == [f"mappings[0].source.type: {reference!r} is not of the form "
                        "module:name"]


def test_connector_settings_are_checked_strictly(tmp_path: Path) -> None:
    problems = problems_for(tmp_path, source=f"{{type: {STREAM}, streem: s}}")
    assert problems == ["mappings[0].source: unknown key 'streem' (did you mean 'stream'?)",
                        "mappings[0].source: missing required key 'stream'"]


def test_missing_source_target_and_name_are_reported_together(tmp_path: Path) -> None:
    file = write(tmp_path, "esm.yaml", "mappings:\n  - {enabled: true}\n")
    problems = validate_files([file], {})
    assert problems == [f"{file}: mappings[0]: missing required key '{key}'"
                        for key in ("name", "source", "target")]


@pytest.mark.parametrize("name, ok", [("orders-to-billing", True), ("a.b_c-1", True),
                                      ("Orders", False), ("-x", False), ("a" * 64, True),
                                      ("a" * 65, False)])
def test_mapping_name_rule(tmp_path: Path, name: str, ok: bool) -> None:
    file = write(tmp_path, "esm.yaml", mapping_yaml().replace("name: m1", f"name: '{name}'"))
    assert (validate_files([file], {}) == []) is ok


def test_secret_connector_setting_is_hidden_in_problems_and_repr(tmp_path: Path) -> None:
    # Given a secret from the environment in one file, and a mistyped secret in another
    good = write(tmp_path, "good.yaml", mapping_yaml(
        source=f"{{type: {STREAM}, stream: s, password: '${{PW}}'}}"))
    bad = write(tmp_path, "bad.yaml", mapping_yaml(
        source=f"{{type: {STREAM}, stream: s, password: 4242424242}}"))
    # When loading them
    config = load_config([good], {"PW": "hunter2-secret"})
    problems = validate_files([bad], {})
    # Then the value works but shows nowhere
    assert config.mappings[0].source.settings.password == "hunter2-secret"
    assert "hunter2-secret" not in repr(config)
    assert problems == [f"{bad}: mappings[0].source.password: must be a string, got integer "
                        "(quote it in YAML to make it a string)"]
