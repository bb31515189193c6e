"""Amazon MSK on the Kafka connectors: the MSK event shape and KafkaBatchInfo ARN
(ESM-SPEC §2.7), checked against Powertools' Kafka models; AWS_MSK_IAM option mapping and its
OAUTHBEARER token provider."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest
from aws_lambda_powertools.utilities.data_classes.kafka_event import KafkaEvent
from aws_lambda_powertools.utilities.parser.models.kafka import (
    KafkaMskEventModel,
    KafkaSelfManagedEventModel,
)

from connectors.kafka.destination import record_notice
from connectors.kafka.event import KafkaEvents, to_record
from connectors.kafka.msk import MskIamTokens, arn_problems, region_of
from connectors.kafka.security import KafkaSecuritySettings, client_config
from connectors.kafka.settings import source_problems
from tests.unit.kafka.test_kafka_event import Msg
from tests.unit.kafka.test_kafka_security import settings

ARN = "arn:aws:kafka:eu-west-1:123456789012:cluster/demo/751d2973-a626-431c-9d4e-d7975eb44dd7-2"


def records() -> list[object]:
    return [to_record(Msg(o, headers=[("h", b"v")]), now=0.0) for o in (15, 16)]


def test_cluster_arn_gives_the_msk_event_shape() -> None:
    event = KafkaEvents(["b-1:9098", "b-2:9098"], ARN).build_event(records())  # type: ignore[arg-type]
    assert list(event)[:3] == ["eventSource", "eventSourceArn", "bootstrapServers"]
    assert (event["eventSource"], event["eventSourceArn"]) == ("aws:kafka", ARN)
    parsed = KafkaMskEventModel.model_validate(orjson.loads(orjson.dumps(event)))
    assert parsed.eventSourceArn == ARN
    assert parsed.bootstrapServers == ["b-1:9098", "b-2:9098"]
    [record] = parsed.records["orders-2"][:1]
    assert record.offset == 15 and record.headers == [{"h": b"v"}]
    data_class = KafkaEvent(event)
    assert data_class.event_source == "aws:kafka" and data_class.event_source_arn == ARN
    assert base64.b64decode(next(data_class.records).value) == b'{"type": "order", "amount": 12}'


def test_without_an_arn_the_self_managed_shape_stays() -> None:
    events = KafkaEvents(["b:9092"])
    event = events.build_event(records())  # type: ignore[arg-type]
    assert event["eventSource"] == "SelfManagedKafka" and "eventSourceArn" not in event
    KafkaSelfManagedEventModel.model_validate(orjson.loads(orjson.dumps(event)))
    assert events.batch_info(records())["eventSourceArn"] is None  # type: ignore[arg-type]


def test_envelope_size_counts_the_arn() -> None:
    plain, msk = KafkaEvents(["b:9092"]), KafkaEvents(["b:9092"], ARN)
    assert msk.event_overhead_bytes() - plain.event_overhead_bytes() == len(
        b',"eventSourceArn":""') + len(ARN) + len("aws:kafka") - len("SelfManagedKafka")


def test_batch_info_and_per_record_notices_carry_the_cluster_arn() -> None:
    rs = records()
    info = KafkaEvents(["b:9092"], ARN).batch_info(rs)  # type: ignore[arg-type]
    assert info["eventSourceArn"] == ARN
    single = record_notice({"KafkaBatchInfo": info}, rs[0])  # type: ignore[arg-type]
    assert single["KafkaBatchInfo"]["eventSourceArn"] == ARN
    assert (single["payload"]["eventSource"], single["payload"]["eventSourceArn"]) == (
        "aws:kafka", ARN)
    KafkaMskEventModel.model_validate(single["payload"])


@pytest.mark.parametrize("arn", [
    "arn:aws:mq:us-east-1:1:broker:x:y", "arn:aws:kafka:us-east-1:1:topic/x", "kafka-cluster",
    "arn:aws:kafka::1:cluster/x/y"])
def test_a_bad_cluster_arn_is_named(arn: str) -> None:
    assert arn_problems(arn) and "not an MSK cluster ARN" in arn_problems(arn)[0]
    problems = source_problems(settings(msk_cluster_arn=arn), {}, {}, 0.0)
    assert any(p.startswith("source.msk_cluster_arn: ") for p in problems)
    assert region_of(arn) is None


def test_iam_auth_maps_to_sasl_ssl_oauthbearer_with_the_arn_region() -> None:
    config = client_config(settings(auth="AWS_MSK_IAM", msk_cluster_arn=ARN), {})
    assert config["security.protocol"] == "SASL_SSL"
    assert config["sasl.mechanism"] == "OAUTHBEARER"
    tokens = config["oauth_cb"].__self__
    assert isinstance(tokens, MskIamTokens) and tokens.region == "eu-west-1"
    assert "sasl.username" not in config
    assert config["ssl.endpoint.identification.algorithm"] == "https"


def test_iam_region_setting_wins_and_is_needed_without_an_arn() -> None:
    sec = KafkaSecuritySettings(auth="AWS_MSK_IAM", region="us-east-2")
    assert client_config(sec, {})["oauth_cb"].__self__.region == "us-east-2"
    problems = source_problems(settings(auth="AWS_MSK_IAM"), {}, {}, 0.0)
    assert problems == ["source.region: required when auth is AWS_MSK_IAM (or set "
                        "msk_cluster_arn, whose region is used)"]
    assert source_problems(settings(auth="AWS_MSK_IAM", username="u"), {}, {}, 0.0)[0] \
        .startswith("source.username: only used with a SASL auth")


def test_token_provider_reuses_a_token_until_a_minute_before_it_expires() -> None:
    calls: list[str] = []
    clock = [1000.0]

    def signer(region: str) -> tuple[str, int]:
        calls.append(region)
        return f"token-{len(calls)}", int((clock[0] + 900) * 1000)

    tokens = MskIamTokens("eu-west-1", signer, now=lambda: clock[0])
    assert tokens.token() == tokens.token() == "token-1"
    clock[0] += 900 - 61
    # librdkafka's callback gets the token with its expiry in epoch seconds
    assert tokens.oauth_cb("") == ("token-1", 1900.0)
    clock[0] += 2
    assert tokens.token() == "token-2" and calls == ["eu-west-1", "eu-west-1"]


def test_real_signer_makes_a_sigv4_connect_url_for_the_region(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    token = MskIamTokens("eu-west-1").token()
    url = urlsplit(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode())
    query = parse_qs(url.query)
    assert url.hostname == "kafka.eu-west-1.amazonaws.com"
    assert query["Action"] == ["kafka-cluster:Connect"]
    assert query["X-Amz-Credential"][0].startswith("AKIDEXAMPLE/")
    assert "/eu-west-1/kafka-cluster/aws4_request" in query["X-Amz-Credential"][0]
    assert query["X-Amz-Signature"][0]
