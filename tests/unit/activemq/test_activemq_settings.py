"""`type: activemq` settings through the real config loader: defaults, bad values named,
and the delivery limit that applies only with an on-failure destination."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from connectors.activemq.settings import ActiveMQSettings, public_url, settings_problems
from esm.config.loading import load_config, validate_files


def write(tmp_path: Path, source: str, extra: str = "") -> str:
    path = tmp_path / "esm.yaml"
    path.write_text(textwrap.dedent(f"""\
        mappings:
          - name: mq
            source: {{type: activemq, {source}}}
            target: {{type: http, url: "http://127.0.0.1:1/invoke"}}
        """) + textwrap.indent(textwrap.dedent(extra), "    "))
    return str(path)


def test_defaults_are_aws_values(tmp_path: Path) -> None:
    mapping = load_config([write(tmp_path, "queue: orders")], {}).mappings[0]
    assert mapping.batch_size == 100
    assert mapping.maximum_batching_window_in_seconds == 0.5
    settings = mapping.source.settings
    assert isinstance(settings, ActiveMQSettings)
    assert (settings.maximum_redeliveries, settings.redelivery_delay_seconds) == (6, 1.0)
    assert settings.slots == 5 and settings.url == "amqp://localhost:5672"
    assert mapping.max_deliveries is None  # without a destination the broker's DLQ takes them


def test_with_a_destination_the_core_dead_letters_at_the_seventh_delivery(
        tmp_path: Path) -> None:
    extra = """\
        destination_config:
          on_failure: {type: file, path: dead.jsonl}
        """
    mapping = load_config([write(tmp_path, "queue: orders", extra)], {}).mappings[0]
    assert mapping.max_deliveries == 7
    fewer = load_config([write(tmp_path, "queue: orders, maximum_redeliveries: 2", extra)],
                        {}).mappings[0]
    assert fewer.max_deliveries == 3


@pytest.mark.parametrize(("source", "problem"), [
    ("queue: orders, url: 'http://broker:5672'", "source.url: scheme must be amqp:// or amqps://"),
    ("queue: orders, url: 'amqp://esm:secret@broker'", "source.url: must not hold a password"),
    ("queue: ''", "source.queue: must be a non-empty queue name"),
    ("queue: 'topic://prices'", "source.queue: only queues are read"),
    ("queue: orders, password_env: MQ_PW", "source.password_env: needs username"),
    ("queue: orders, username: esm, password_env: ESM_TEST_UNSET_VARIABLE",
     "source.password_env: environment variable ESM_TEST_UNSET_VARIABLE is not set"),
    ("queue: orders, maximum_redeliveries: -1", "source.maximum_redeliveries"),
    ("queue: orders, credit: 0", "source.credit"),
    ("queue: orders, queues: [a]", "unknown key 'queues' (did you mean 'queue'?)"),
    ("url: 'amqp://broker'", "source: missing required key 'queue'"),
])
def test_bad_settings_are_named(tmp_path: Path, source: str, problem: str) -> None:
    problems = validate_files([write(tmp_path, source)], {})
    assert any(problem in p for p in problems), problems


def test_settings_problems_read_the_given_environment() -> None:
    settings = ActiveMQSettings(queue="q", username="esm", password_env="MQ_PW")
    assert settings_problems(settings, {"MQ_PW": "x"}) == []
    assert settings_problems(settings, {}) != []


def test_public_url_drops_user_information() -> None:
    assert public_url("amqps://esm@b-1.mq.us-east-1.amazonaws.com:5671") == \
        "amqps://b-1.mq.us-east-1.amazonaws.com:5671"


def test_partial_batch_responses_are_refused_as_aws_does(tmp_path: Path) -> None:
    extra = "function_response_types: [ReportBatchItemFailures]\n"
    problems = validate_files([write(tmp_path, "queue: orders", extra)], {})
    assert any("mappings[0].function_response_types: not supported for ActiveMQ" in p
               for p in problems), problems
