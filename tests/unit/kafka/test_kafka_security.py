"""Kafka settings: AWS SourceAccessConfigurations → librdkafka configuration, config checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.kafka.security import KafkaSecuritySettings, client_config
from connectors.kafka.settings import KafkaSourceSettings, source_problems
from tests.unit.checklist_support import problems_of

ENV = {"KAFKA_PW": "s3cret", "KEY_PW": "kp"}


def settings(**kw: object) -> KafkaSourceSettings:
    base: dict[str, object] = {"bootstrap_servers": ("b:9092",), "topics": ("orders",),
                               "consumer_group_id": "esm-orders"}
    base.update(kw)
    return KafkaSourceSettings(**base)  # type: ignore[arg-type]


def test_no_auth_is_plaintext() -> None:
    assert client_config(KafkaSecuritySettings(), {}) == {"security.protocol": "PLAINTEXT"}


@pytest.mark.parametrize(("auth", "mechanism"), [
    ("BASIC_AUTH", "PLAIN"), ("SASL_SCRAM_256_AUTH", "SCRAM-SHA-256"),
    ("SASL_SCRAM_512_AUTH", "SCRAM-SHA-512")])
def test_sasl_auth_maps_to_mechanism_with_password_from_env(auth: str, mechanism: str) -> None:
    sec = KafkaSecuritySettings(auth=auth, username="u", password_env="KAFKA_PW",  # type: ignore[arg-type]
                                tls=True, server_root_ca_file="ca.pem")
    assert client_config(sec, ENV) == {
        "security.protocol": "SASL_SSL", "sasl.mechanism": mechanism,
        "sasl.username": "u", "sasl.password": "s3cret",
        "ssl.endpoint.identification.algorithm": "https", "ssl.ca.location": "ca.pem"}


def test_sasl_without_tls_is_sasl_plaintext() -> None:
    sec = KafkaSecuritySettings(auth="BASIC_AUTH", username="u", password_env="KAFKA_PW")
    assert client_config(sec, ENV)["security.protocol"] == "SASL_PLAINTEXT"


def test_client_certificate_auth_is_mutual_tls() -> None:
    sec = KafkaSecuritySettings(auth="CLIENT_CERTIFICATE_TLS_AUTH",
                                client_certificate_file="c.pem", client_key_file="k.pem",
                                client_key_password_env="KEY_PW", check_hostname=False)
    assert client_config(sec, ENV) == {
        "security.protocol": "SSL", "ssl.endpoint.identification.algorithm": "none",
        "ssl.certificate.location": "c.pem", "ssl.key.location": "k.pem",
        "ssl.key.password": "kp"}


def test_missing_password_variable_is_named() -> None:
    sec = KafkaSecuritySettings(auth="BASIC_AUTH", username="u", password_env="NOPE")
    with pytest.raises(ValueError, match="password_env: environment variable .NOPE. is not set"):
        client_config(sec, ENV)


def test_inconsistent_security_settings_are_all_reported() -> None:
    problems = source_problems(settings(auth="CLIENT_CERTIFICATE_TLS_AUTH", username="u"),
                               {}, ENV, now=0.0)
    assert ("source.client_certificate_file: required when auth is CLIENT_CERTIFICATE_TLS_AUTH"
            in problems)
    assert "source.client_key_file: required when auth is CLIENT_CERTIFICATE_TLS_AUTH" in problems
    assert any(p.startswith("source.username: only used with a SASL auth") for p in problems)


def test_valid_source_settings_have_no_problems() -> None:
    assert source_problems(settings(), {}, ENV, now=0.0) == []


def test_at_timestamp_needs_a_timestamp_not_in_the_future() -> None:
    assert source_problems(settings(starting_position="AT_TIMESTAMP"), {}, ENV, now=10.0) == [
        "source.starting_position_timestamp: required when starting_position is AT_TIMESTAMP"]
    assert source_problems(settings(starting_position="AT_TIMESTAMP",
                                    starting_position_timestamp=11.0), {}, ENV, now=10.0) == [
        "source.starting_position_timestamp: cannot be in the future"]
    assert source_problems(settings(starting_position_timestamp=1.0), {}, ENV, now=10.0) == [
        "source.starting_position_timestamp: only used with AT_TIMESTAMP"]


def test_bad_servers_topics_and_group_are_reported() -> None:
    problems = source_problems(settings(bootstrap_servers=("nohost",), topics=(".x",),
                                        consumer_group_id="bad group!"), {}, ENV, now=0.0)
    assert problems == ["source.bootstrap_servers: 'nohost' is not host:port",
                        "source.topics: '.x' is not a valid topic name",
                        "source.consumer_group_id: must be 1-200 characters of "
                        "a-z A-Z 0-9 - / * : _ + = . @"]


def test_kafka_destination_on_a_source_topic_is_refused() -> None:
    mapping = {"destination_config": {"on_failure": {"type": "kafka", "topic": "orders"}}}
    assert source_problems(settings(), mapping, ENV, now=0.0) == [
        "destination_config.on_failure.topic: 'orders' is a source topic; "
        "a Kafka on-failure destination must be another topic"]
    other = {"destination_config": {"on_failure": {"type": "kafka", "topic": "orders-dlq"}}}
    assert source_problems(settings(), other, ENV, now=0.0) == []


def test_settings_problems_name_the_source_key_in_the_configuration(tmp_path: Path) -> None:
    # Given a Kafka mapping whose source settings break a cross-field rule
    problems = problems_of(tmp_path, 'source: {type: kafka, bootstrap_servers: ["nohost"], '
                                     "topics: [orders], consumer_group_id: g}")
    # Then the problem names the key where it is written: under `source`
    assert [p.split(": ", 1)[1] for p in problems] == [
        "mappings[0].source.bootstrap_servers: 'nohost' is not host:port"]


def test_an_unset_variable_with_a_line_break_in_its_name_is_quoted_on_one_line(
        tmp_path: Path) -> None:
    # Given a password variable name holding a line break (NEL), unset of course
    problems = problems_of(tmp_path, 'source: {type: kafka, bootstrap_servers: ["b:9092"], '
                                     'topics: [orders], consumer_group_id: g, '
                                     'client_key_password_env: "KEY\\x85PW"}')
    # Then the name is quoted, and the problem stays on one line
    assert [p.split(": ", 1)[1] for p in problems] == [
        "mappings[0].source.client_key_password_env: environment variable 'KEY\\x85PW' is "
        "not set"]
