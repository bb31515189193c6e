"""Settings rules of the redis_streams source that field metadata cannot express."""

from __future__ import annotations

import os
import threading

import pytest

from connectors.redis.client import build_client, read_credentials
from connectors.redis.settings import (
    RedisStreamsSettings,
    mapping_problems,
    settings_problems,
)
from connectors.redis.source import RedisStreamsSource
from esm.clock import FakeClock
from esm.errors import ConfigError
from esm.interfaces import ConnectorContext


def settings(**overrides: object) -> RedisStreamsSettings:
    values: dict[str, object] = {"streams": ("orders",)}
    values.update(overrides)
    return RedisStreamsSettings(**values)  # type: ignore[arg-type]


def context() -> ConnectorContext:
    return ConnectorContext("m", threading.Event(), FakeClock())


def test_defaults_have_no_problems() -> None:
    assert settings_problems(settings()) == []


@pytest.mark.parametrize(("overrides", "problem"), [
    ({"streams": ()}, "streams: must list at least one stream key"),
    ({"streams": ("a", "a")}, "streams: must not list a stream twice"),
    ({"streams": ("a", "")}, "streams[1]: must be a non-empty string"),
    ({"starting_position": "AT_TIMESTAMP"},
     "starting_position: must be one of TRIM_HORIZON, LATEST"),
    ({"consumer_group": ""}, "consumer_group: must be a non-empty string"),
    ({"url": "http://x"}, "url: scheme must be one of redis://, rediss://, unix://"),
    ({"ssl_ca_certs": "ca.pem"}, "ssl_ca_certs: needs a rediss:// url"),
    ({"url": "rediss://h", "ssl_certfile": "c.pem"},
     "ssl_certfile: ssl_certfile and ssl_keyfile go together"),
    ({"block_milliseconds": 5000, "socket_timeout_seconds": 5.0},
     "socket_timeout_seconds: must be longer than block_milliseconds"),
])
def test_bad_settings_are_named(overrides: dict[str, object], problem: str) -> None:
    assert problem in settings_problems(settings(**overrides))


def test_target_timeout_longer_than_visibility_timeout_is_refused() -> None:
    # Given a target slower than the visibility timeout (ESM-SPEC checklist 40)
    mapping = {"target": {"type": "http", "timeout_seconds": 60}}
    # Then the mapping check names the key
    assert mapping_problems(settings(visibility_timeout_seconds=30), mapping) == [
        "source.visibility_timeout_seconds: must be at least the target's timeout_seconds (60)"]
    assert RedisStreamsSource.check_mapping(settings(visibility_timeout_seconds=60), mapping) == []


def test_parallelization_factor_needs_an_ordering_key_field() -> None:
    # Given a mapping running 4 batches per stream
    mapping = {"parallelization_factor": 4}
    # Then the source must name the field whose value keeps order
    [problem] = mapping_problems(settings(), mapping)
    assert problem.startswith("source.ordering_key_field: required with parallelization_factor 4")
    assert mapping_problems(settings(ordering_key_field="user"), mapping) == []
    assert mapping_problems(settings(), {"parallelization_factor": 1}) == []


def test_mapping_check_names_source_keys_relative_to_the_mapping() -> None:
    assert mapping_problems(settings(streams=("a", "a")), {}) == [
        "source.streams: must not list a stream twice"]


def test_constructor_refuses_bad_settings_without_connecting() -> None:
    with pytest.raises(ConfigError, match="streams: must list at least one"):
        RedisStreamsSource(settings(streams=()), context())


def test_credentials_come_from_the_named_environment_variables() -> None:
    s = settings(username_env="R_USER", password_env="R_PASS")
    assert read_credentials(s, {"R_USER": "u", "R_PASS": "p"}) == {
        "username": "u", "password": "p"}
    with pytest.raises(ConfigError, match="password_env: environment variable 'R_PASS' is not set"):
        read_credentials(s, {"R_USER": "u"})


def test_client_carries_credentials_and_tls_options() -> None:
    s = settings(url="rediss://cache:6380/2", ssl_ca_certs="ca.pem", socket_timeout_seconds=7)
    client = build_client(s, {"password": "p"})
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("cache", 6380, 2)
    assert kwargs["password"] == "p"
    assert kwargs["ssl_ca_certs"] == "ca.pem"
    assert kwargs["socket_timeout"] == 7
    assert "SSL" in client.connection_pool.connection_class.__name__


def test_consumer_name_defaults_to_host_and_pid() -> None:
    source = RedisStreamsSource(settings(), context())
    assert source.consumer.endswith(f"-{os.getpid()}")
    named = RedisStreamsSource(settings(consumer_name="replica-a"), context())
    assert named.consumer == "replica-a"
