"""`type: rabbitmq` settings: bad values are refused by the config loader (what `esm validate`
runs) with messages naming the key; good ones give AWS's defaults (ESM-SPEC §2.6)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors.rabbitmq.connection import connection_parameters, read_password
from connectors.rabbitmq.settings import RabbitMQSettings, TlsFiles, parse_url
from connectors.rabbitmq.source import RabbitMQSource
from esm.cli import main
from esm.clock import FakeClock
from esm.config.loading import load_config, validate_files
from esm.errors import ConfigError
from esm.interfaces import ConnectorContext

TARGET = {"type": "python", "handler": "tests.integration.handlers:record"}
DESTINATION = {"type": "file", "path": "dead.jsonl"}


def write(tmp_path: Path, source: dict[str, Any], **mapping: Any) -> str:
    document = {"mappings": [{"name": "rabbit", "source": {"type": "rabbitmq", **source},
                              "target": TARGET, **mapping}]}
    path = tmp_path / "esm.yaml"
    path.write_text(yaml.safe_dump(document))
    return str(path)


def problems(tmp_path: Path, source: dict[str, Any], **mapping: Any) -> list[str]:
    return validate_files([write(tmp_path, source, **mapping)], {})


def test_defaults_are_aws_batch_100_window_half_a_second(tmp_path: Path) -> None:
    config = load_config([write(tmp_path, {"queues": ["orders"]})], {})
    mapping = config.mappings[0]
    assert (mapping.batch_size, mapping.maximum_batching_window_in_seconds) == (100, 0.5)
    assert mapping.source.settings.url == "amqp://localhost:5672/"
    assert mapping.max_deliveries is None


def test_batch_size_above_10_needs_no_window_unlike_sqs(tmp_path: Path) -> None:
    source = {"queues": ["orders"]}
    assert problems(tmp_path, source, batch_size=10000,
                    maximum_batching_window_in_seconds=0) == []


@pytest.mark.parametrize(("source", "expected"), [
    ({"queues": []}, "source.queues: must have at least 1 item"),
    ({"queues": ["a", "a"]}, "source.queues: must not list a queue twice"),
    ({"queues": [""]}, "source.queues[0]: must be a non-empty queue name"),
    ({"queues": ["q"], "url": "http://rabbit/"},
     "source.url: scheme must be amqp:// or amqps://, got 'http'"),
    ({"queues": ["q"], "url": "amqp://esm:hunter2@rabbit/"},
     "source.url: must not contain a password; name its environment variable in "
     "password_env"),
    ({"queues": ["q"], "url": "amqp://rabbit/", "password_env": "P"},
     "source.password_env: the url names no user (amqp://USER@host/)"),
    ({"queues": ["q"], "tls": {"ca_file": "ca.pem"}}, "source.tls: needs an amqps:// url"),
    ({"queues": ["q"], "url": "amqps://rabbit/", "tls": {"cert_file": "c.pem"}},
     "source.tls: cert_file and key_file go together"),
    ({"queues": ["q"], "prefetch_count": 70000}, "source.prefetch_count: must be"),
    ({"queues": ["q"], "max_deliveries": 3},
     "source.max_deliveries: needs destination_config.on_failure"),
    ({"queues": ["q"], "prefetch": 10},
     "source: unknown key 'prefetch' (did you mean 'prefetch_count'?)"),
])
def test_bad_settings_are_named_with_their_key(tmp_path: Path, source: dict[str, Any],
                                               expected: str) -> None:
    found = problems(tmp_path, source)
    assert any(expected in problem for problem in found), found
    assert all(problem.startswith(str(tmp_path)) for problem in found)


def test_password_never_appears_in_a_problem(tmp_path: Path) -> None:
    found = problems(tmp_path, {"queues": ["q"], "url": "amqp://esm:hunter2@rabbit/"})
    assert found and not any("hunter2" in problem for problem in found)


def test_stream_only_keys_are_refused_for_a_queue_source(tmp_path: Path) -> None:
    found = problems(tmp_path, {"queues": ["q"]}, maximum_retry_attempts=3)
    assert any("maximum_retry_attempts: applies only to stream sources" in p for p in found)


def test_max_deliveries_with_a_destination_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, {"queues": ["q"], "max_deliveries": 3},
                 destination_config={"on_failure": DESTINATION})
    assert load_config([path], {}).mappings[0].max_deliveries == 3


def test_url_gives_user_vhost_and_port() -> None:
    assert parse_url("amqp://esm@rabbit/").vhost == "/"
    assert parse_url("amqp://esm@rabbit:5673/%2F").vhost == "/"
    address = parse_url("amqps://esm@rabbit/prod")
    assert (address.user, address.port, address.vhost, address.host) == (
        "esm", 5671, "prod", "rabbit")


def test_connection_parameters_carry_the_password_from_the_environment() -> None:
    settings = RabbitMQSettings(queues=("q",), url="amqp://esm@rabbit:5673/orders",
                                password_env="RMQ_PW")
    params = connection_parameters(settings, read_password(settings, {"RMQ_PW": "s3cret"}))
    assert (params.host, params.port, params.virtual_host) == ("rabbit", 5673, "orders")
    assert (params.credentials.username, params.credentials.password) == ("esm", "s3cret")
    assert params.ssl_options is None


def test_amqps_uses_tls_with_the_server_name_of_the_url(tmp_path: Path) -> None:
    settings = RabbitMQSettings(queues=("q",), url="amqps://esm@rabbit.example/",
                                tls=TlsFiles())
    params = connection_parameters(settings, None)
    assert params.port == 5671
    assert params.ssl_options.server_hostname == "rabbit.example"


def test_missing_password_variable_is_named_without_connecting() -> None:
    settings = RabbitMQSettings(queues=("q",), url="amqp://esm@rabbit/", password_env="NOPE")
    context = ConnectorContext("m", threading.Event(), FakeClock())
    with pytest.raises(ConfigError, match="password_env: environment variable NOPE is not set"):
        RabbitMQSource(settings, context, environ={})


def test_prefetch_defaults_to_two_batches_per_slot() -> None:
    settings = RabbitMQSettings(queues=("q",))
    context = ConnectorContext("m", threading.Event(), FakeClock(), batch_size=50,
                               maximum_concurrency=4)
    source = RabbitMQSource(settings, context, environ={})
    assert source.prefetch_count == 400
    assert source.plan.lanes == [f"q#slot-{i}" for i in range(4)]


def test_esm_validate_reports_every_problem_and_exits_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, {"queues": ["a", "a"], "url": "amqp://esm:pw@rabbit/",
                            "max_deliveries": 2})
    assert main(["validate", path]) == 2
    output = capsys.readouterr()
    text = output.out + output.err
    for expected in ("source.queues: must not list a queue twice",
                     "source.url: must not contain a password",
                     "source.max_deliveries: needs destination_config.on_failure"):
        assert expected in text, text
    assert "pw@" not in text
