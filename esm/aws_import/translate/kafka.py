"""Amazon MSK and self-managed Kafka parameters → an esm `kafka` source.

MSK names a cluster ARN; its brokers' addresses are not in any template, so
`bootstrap_servers` is a `${VARIABLE}` unless `--endpoint ARN=host:port[,host:port]` gives
them. `SourceAccessConfigurations` become esm's `auth` settings: the Secrets Manager
secret's user name becomes a variable and its password an environment variable named by
`password_env` (esm never keeps secrets in its files); certificates become file paths.
"""

from __future__ import annotations

import re
from typing import Any

from esm.aws_import.arns import parse_arn, resource_name
from esm.aws_import.intrinsics import Symbol
from esm.aws_import.translate.sources import starting_position
from esm.aws_import.translate.translation import Commented, Translation
from esm.aws_import.variables import env_name

_SASL = ("BASIC_AUTH", "SASL_SCRAM_256_AUTH", "SASL_SCRAM_512_AUTH")
_NETWORK = ("VPC_SUBNET", "VPC_SECURITY_GROUP")
_SECRET_SUFFIX = re.compile(r"-[A-Za-z0-9]{6}$")  # Secrets Manager's random ARN suffix


def kafka_source(t: Translation, kind: str) -> dict[str, Any]:
    source: dict[str, Any] = {"type": "kafka"}
    source["bootstrap_servers"] = (_self_managed_servers(t) if kind == "kafka"
                                   else _msk_servers(t, source))
    topics = t.take("Topics")
    source["topics"] = topics if isinstance(topics, list) and topics else [t.text(
        topics if isinstance(topics, Symbol) else None, "KAFKA_TOPIC", "the Kafka topic",
        "orders")]
    source["consumer_group_id"] = _group_id(t, kind)
    starting_position(t, source, None)
    source.update(_security(t, kind))
    if source.get("auth") == "AWS_MSK_IAM" and "msk_cluster_arn" not in source:
        source["region"] = t.variable("AWS_REGION", "the MSK cluster's AWS region (IAM tokens "
                                      "are signed for it)", "us-east-1")
    return source


def _msk_servers(t: Translation, source: dict[str, Any]) -> list[Any]:
    value = t.take("EventSourceArn")
    if isinstance(value, str) and value.startswith("arn:aws:kafka:"):
        source["msk_cluster_arn"] = value  # MSK's event shape (ESM-SPEC §2.7)
    endpoint = t.endpoint(value)
    if endpoint:
        return [s.strip() for s in endpoint.split(",") if s.strip()]
    arn = parse_arn(value)
    stem = env_name(resource_name(arn)) if arn else t.stem_of(value, "msk cluster")
    about = f"{value}" if isinstance(value, str) else (
        value.description if isinstance(value, Symbol) else "not given")
    reference = t.variable(
        stem + "_BOOTSTRAP_SERVERS",
        f"host:port of a broker of the MSK cluster {about} (aws kafka get-bootstrap-brokers "
        "--cluster-arn ARN); list more brokers as further entries", "broker-1.example.com:9092")
    return [reference]


def _self_managed_servers(t: Translation) -> list[Any]:
    source = t.take("SelfManagedEventSource")
    endpoints = source.get("Endpoints") if isinstance(source, dict) else None
    servers = endpoints.get("KAFKA_BOOTSTRAP_SERVERS") if isinstance(endpoints, dict) else None
    if isinstance(servers, list) and servers:
        found: list[Any] = []
        for server in servers:  # --endpoint broker:9092=127.0.0.1:9092 replaces one broker
            override = t.endpoint(server)
            found += [s.strip() for s in override.split(",") if s.strip()] if override else [
                t.text(server, "KAFKA_BOOTSTRAP_SERVER", "host:port of a Kafka broker",
                       "broker-1.example.com:9092")]
        return found
    return [t.variable("KAFKA_BOOTSTRAP_SERVERS", "host:port of a Kafka broker "
                       "(SelfManagedEventSource gave none)", "broker-1.example.com:9092")]


def _group_id(t: Translation, kind: str) -> Any:
    key = ("SelfManagedKafkaEventSourceConfig" if kind == "kafka"
           else "AmazonManagedKafkaEventSourceConfig")
    config = t.take(key)
    config = config if isinstance(config, dict) else {}
    if config.get("SchemaRegistryConfig") is not None:
        t.note(f"{key}.SchemaRegistryConfig", "not carried over: esm does not decode "
                                              "schema-registry records (they arrive as bytes)")
    group = config.get("ConsumerGroupId")
    if group:
        return t.text(group, "KAFKA_CONSUMER_GROUP_ID", "the Kafka consumer group", "esm")
    return Commented(f"esm-{t.name}"[:200], "AWS generates a unique group when none is "
                                            "given; esm needs one named")


def _security(t: Translation, kind: str) -> dict[str, Any]:
    configs = t.take("SourceAccessConfigurations")
    settings: dict[str, Any] = {}
    if not configs and kind == "msk":
        t.note("SourceAccessConfigurations", "none given: AWS reaches the MSK cluster with "
               "IAM access control; esm does too (auth: AWS_MSK_IAM, credentials from the AWS "
               "default chain)")
        settings["auth"] = "AWS_MSK_IAM"
    for index, config in enumerate(configs if isinstance(configs, list) else []):
        kind_of = config.get("Type") if isinstance(config, dict) else None
        uri = config.get("URI") if isinstance(config, dict) else None
        where = f"SourceAccessConfigurations[{index}]"
        if kind_of in _SASL:
            settings.update(_sasl(t, kind_of, uri))
        elif kind_of == "CLIENT_CERTIFICATE_TLS_AUTH":
            settings.update(_client_certificate(t, uri))
        elif kind_of == "SERVER_ROOT_CA_CERTIFICATE":
            settings["server_root_ca_file"] = t.variable(
                _secret_stem(uri) + "_ROOT_CA_FILE",
                f"PEM file holding the root CA certificate of secret {uri}", "/etc/esm/ca.pem")
            settings["tls"] = True
        elif kind_of in _NETWORK:
            t.note(where, f"{kind_of} {uri} not carried over: esm connects from the network "
                          "it runs in")
        else:
            t.note(where, f"{kind_of} not carried over: not a Kafka access configuration")
    return settings


def _sasl(t: Translation, kind_of: str, uri: Any) -> dict[str, Any]:
    stem = _secret_stem(uri)
    password = t.findings.variable(
        stem + "_PASSWORD", f"the password in secret {uri} (esm reads it from this "
                            "environment variable)", "secret", secret=True)
    return {
        "auth": kind_of,
        "username": t.variable(stem + "_USERNAME", f"the user name in secret {uri}", "esm"),
        "password_env": password.name,
        "tls": Commented(True, "AWS connects with SASL over TLS; false for a plaintext "
                               "listener"),
    }


def _client_certificate(t: Translation, uri: Any) -> dict[str, Any]:
    stem = _secret_stem(uri)
    return {
        "auth": "CLIENT_CERTIFICATE_TLS_AUTH",
        "client_certificate_file": t.variable(
            stem + "_CERTIFICATE_FILE", f"PEM file of the client certificate in secret {uri}",
            "/etc/esm/client.pem"),
        "client_key_file": t.variable(
            stem + "_KEY_FILE", f"PEM file of the private key in secret {uri}",
            "/etc/esm/client.key"),
    }


def _secret_stem(uri: Any) -> str:
    """`arn:aws:secretsmanager:R:A:secret:my-path/my-secret-1a2b3c` → `MY_SECRET`."""
    arn = parse_arn(uri)
    name = arn.resource.rpartition(":")[2] if arn else str(uri or "kafka")
    name = _SECRET_SUFFIX.sub("", name.rpartition("/")[2])
    return env_name(name or "kafka")
