"""Kafka connection security: settings that mirror AWS SourceAccessConfigurations, mapped to
librdkafka configuration.

AWS types (ESM-SPEC §1.2, `SourceAccessConfigurations`) and their esm spelling:

    BASIC_AUTH                    auth: BASIC_AUTH             SASL/PLAIN
    SASL_SCRAM_256_AUTH           auth: SASL_SCRAM_256_AUTH    SASL/SCRAM-SHA-256
    SASL_SCRAM_512_AUTH           auth: SASL_SCRAM_512_AUTH    SASL/SCRAM-SHA-512
    CLIENT_CERTIFICATE_TLS_AUTH   auth: CLIENT_CERTIFICATE_TLS_AUTH (mutual TLS, needs the
                                  certificate and key files)
    SERVER_ROOT_CA_CERTIFICATE    server_root_ca_file
    (MSK IAM)                     auth: AWS_MSK_IAM            SASL_SSL + OAUTHBEARER with a
                                  SigV4 token (msk.py), region from `region` or the
                                  source's msk_cluster_arn (ESM-SPEC §2.7)

Secrets never sit in the YAML: `password_env` / `client_key_password_env` name environment
variables, read once when the client configuration is built (at connector construction, i.e.
startup). Shared by the Kafka source and the Kafka destination so both speak to one cluster
the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from connectors.kafka.msk import MskIamTokens, region_of
from esm.errors import ConfigError

Auth = Literal["NONE", "BASIC_AUTH", "SASL_SCRAM_256_AUTH", "SASL_SCRAM_512_AUTH",
               "CLIENT_CERTIFICATE_TLS_AUTH", "AWS_MSK_IAM"]

_SASL_MECHANISMS: dict[str, str] = {
    "BASIC_AUTH": "PLAIN",
    "SASL_SCRAM_256_AUTH": "SCRAM-SHA-256",
    "SASL_SCRAM_512_AUTH": "SCRAM-SHA-512",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class KafkaSecuritySettings:
    """Fields every Kafka connector accepts, with AWS's authentication choices."""

    auth: Auth = field(default="NONE", metadata={
        "doc": "NONE, BASIC_AUTH (SASL/PLAIN), SASL_SCRAM_256_AUTH, SASL_SCRAM_512_AUTH, "
               "CLIENT_CERTIFICATE_TLS_AUTH (mutual TLS) or AWS_MSK_IAM (Amazon MSK IAM)"})
    tls: bool = field(default=False, metadata={
        "doc": "encrypt the connection (SSL / SASL_SSL); implied by certificate settings"})
    username: str | None = field(default=None, metadata={"doc": "SASL user name"})
    password_env: str | None = field(default=None, metadata={
        "doc": "name of the environment variable holding the SASL password"})
    server_root_ca_file: str | None = field(default=None, metadata={
        "doc": "PEM file of the CA that signed the brokers' certificates"})
    client_certificate_file: str | None = field(default=None, metadata={
        "doc": "PEM client certificate (chain) for CLIENT_CERTIFICATE_TLS_AUTH"})
    client_key_file: str | None = field(default=None, metadata={
        "doc": "PEM private key for CLIENT_CERTIFICATE_TLS_AUTH"})
    client_key_password_env: str | None = field(default=None, metadata={
        "doc": "name of the environment variable holding the client key's password"})
    check_hostname: bool = field(default=True, metadata={
        "doc": "verify that broker certificates name the host connected to"})
    region: str | None = field(default=None, metadata={
        "doc": "AWS region for AWS_MSK_IAM tokens; default: the region in msk_cluster_arn"})


def security_problems(settings: KafkaSecuritySettings,
                      environ: Mapping[str, str]) -> list[str]:
    """Every inconsistency in the security settings, as `field: problem` strings."""
    problems: list[str] = []
    if settings.auth in _SASL_MECHANISMS:
        if not settings.username:
            problems.append(f"username: required when auth is {settings.auth}")
        problems += _env_problems("password_env", settings.password_env, environ, required=True,
                                  why=f"auth is {settings.auth}")
    elif settings.username or settings.password_env:
        problems.append("username: only used with a SASL auth "
                        "(BASIC_AUTH, SASL_SCRAM_256_AUTH, SASL_SCRAM_512_AUTH)")
    if settings.auth == "CLIENT_CERTIFICATE_TLS_AUTH":
        for name in ("client_certificate_file", "client_key_file"):
            if not getattr(settings, name):
                problems.append(f"{name}: required when auth is CLIENT_CERTIFICATE_TLS_AUTH")
    elif settings.client_certificate_file or settings.client_key_file:
        problems.append("client_certificate_file: only used when auth is "
                        "CLIENT_CERTIFICATE_TLS_AUTH")
    problems += _env_problems("client_key_password_env", settings.client_key_password_env,
                              environ, required=False, why="")
    if settings.auth == "AWS_MSK_IAM" and iam_region(settings) is None:
        problems.append("region: required when auth is AWS_MSK_IAM (or set msk_cluster_arn, "
                        "whose region is used)")
    return problems


def iam_region(settings: KafkaSecuritySettings) -> str | None:
    """The region AWS_MSK_IAM tokens are signed for: `region`, else the cluster ARN's."""
    return settings.region or region_of(getattr(settings, "msk_cluster_arn", None))


def _env_problems(name: str, var: str | None, environ: Mapping[str, str], *, required: bool,
                  why: str) -> list[str]:
    if not var:
        return [f"{name}: required when {why}"] if required else []
    if var not in environ:
        return [f"{name}: environment variable {var!r} is not set"]
    return []


def uses_tls(settings: KafkaSecuritySettings) -> bool:
    """TLS is on when asked for, or when any certificate setting or MSK IAM needs it."""
    return bool(settings.tls or settings.auth in ("CLIENT_CERTIFICATE_TLS_AUTH", "AWS_MSK_IAM")
                or settings.server_root_ca_file)


def client_config(settings: KafkaSecuritySettings, environ: Mapping[str, str],
                  owner: str = "kafka") -> dict[str, Any]:
    """librdkafka configuration (`security.protocol`, `sasl.*`, `ssl.*`, and `oauth_cb` for
    MSK IAM) for the settings, as confluent-kafka's clients take it.

    Raises ConfigError naming `owner` and every problem when the settings are inconsistent
    or a named environment variable is missing (the config check reports them earlier).
    """
    problems = security_problems(settings, environ)
    if problems:
        raise ConfigError(f"{owner}: {p}" for p in problems)
    tls = uses_tls(settings)
    mechanism = _SASL_MECHANISMS.get(settings.auth)
    iam = settings.auth == "AWS_MSK_IAM"
    config: dict[str, Any] = {"security.protocol": _protocol(tls, sasl=iam or bool(mechanism))}
    if iam:
        config["sasl.mechanism"] = "OAUTHBEARER"
        config["oauth_cb"] = MskIamTokens(iam_region(settings) or "").oauth_cb
    elif mechanism is not None:
        config["sasl.mechanism"] = mechanism
        config["sasl.username"] = settings.username
        config["sasl.password"] = environ[settings.password_env or ""]
    if tls:
        # librdkafka verifies the broker's host name only when told to ("https").
        config["ssl.endpoint.identification.algorithm"] = (
            "https" if settings.check_hostname else "none")
        if settings.server_root_ca_file:
            config["ssl.ca.location"] = settings.server_root_ca_file
        if settings.client_certificate_file:
            config["ssl.certificate.location"] = settings.client_certificate_file
            config["ssl.key.location"] = settings.client_key_file
        if settings.client_key_password_env:
            config["ssl.key.password"] = environ[settings.client_key_password_env]
    return config


def _protocol(tls: bool, *, sasl: bool) -> str:
    if sasl:
        return "SASL_SSL" if tls else "SASL_PLAINTEXT"
    return "SSL" if tls else "PLAINTEXT"
