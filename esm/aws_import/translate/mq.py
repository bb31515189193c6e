"""Amazon MQ parameters → an esm `rabbitmq` or `activemq` source.

A broker ARN does not say which engine the broker runs. RabbitMQ when a `VIRTUAL_HOST`
access configuration is given or the template declares the broker with
`EngineType: RABBITMQ`; ActiveMQ otherwise (noted). The broker's AMQP URL is a
`${VARIABLE}` unless `--endpoint ARN=URL` gives it.

RabbitMQ (`connectors/rabbitmq`): every queue is read (a lane each), and the URL carries the
user of the BASIC_AUTH secret and the `VIRTUAL_HOST` as its path
(`amqps://${USER}@${HOST}/%2Fshop`); the password is the variable `password_env` names.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

from esm.aws_import.arns import parse_arn, resource_name
from esm.aws_import.intrinsics import Symbol
from esm.aws_import.translate.kafka import _secret_stem
from esm.aws_import.translate.translation import Translation
from esm.aws_import.variables import env_name
from esm.registry import known_types

_EXAMPLE_URL = {"activemq": "amqps://b-1234-1.mq.us-east-1.amazonaws.com:5671"}


def mq_source(t: Translation) -> dict[str, Any]:
    value = t.take("EventSourceArn")
    configs = t.take("SourceAccessConfigurations")
    configs = [c for c in configs if isinstance(c, dict)] if isinstance(configs, list) else []
    engine = _engine(t, value, configs)
    if engine == "rabbitmq":
        return _rabbitmq_source(t, value, configs)
    source: dict[str, Any] = {"type": engine, "url": _url(t, value, engine)}
    if engine == "activemq" and isinstance(value, str) and value.startswith("arn:"):
        source["broker_arn"] = value  # the events' eventSourceArn, as on AWS
    if engine not in known_types("sources"):
        t.note("EventSourceArn", f"esm has no {engine!r} source type yet: this mapping is "
                                 "written for when it does and fails esm validate until then")
    queues = t.take("Queues")
    source["queue"] = queues[0] if isinstance(queues, list) and queues else t.text(
        queues if isinstance(queues, Symbol) else None, "MQ_QUEUE", "the broker queue to read",
        "orders")
    queues = queues if isinstance(queues, list) else []
    if len(queues) > 1:
        t.note("Queues", f"only the first queue is read ({queues[0]}); AWS reads one queue "
                         "per mapping too")
    for config in configs:
        if config.get("Type") == "VIRTUAL_HOST":
            source["virtual_host"] = config.get("URI")
        elif config.get("Type") == "BASIC_AUTH":
            stem = _secret_stem(config.get("URI"))
            uri = config.get("URI")
            source["username"] = t.variable(stem + "_USERNAME",
                                            f"the user name in secret {uri}", "esm")
            source["password_env"] = t.findings.variable(
                stem + "_PASSWORD", f"the password in secret {uri} (esm reads it from this "
                                    "environment variable)", "secret", secret=True).name
        else:
            t.note("SourceAccessConfigurations",
                   f"{config.get('Type')} not carried over: not an Amazon MQ access setting")
    return source


def _rabbitmq_source(t: Translation, value: Any,
                     configs: list[dict[str, Any]]) -> dict[str, Any]:
    """`type: rabbitmq` settings: queues, a URL with user and virtual host, password_env."""
    user = vhost = password = None
    for config in configs:
        kind, uri = config.get("Type"), config.get("URI")
        if kind == "VIRTUAL_HOST":
            vhost = str(uri or "/")
        elif kind == "BASIC_AUTH":
            stem = _secret_stem(uri)
            user = t.variable(stem + "_USERNAME", f"the user name in secret {uri}", "esm")
            password = t.findings.variable(
                stem + "_PASSWORD", f"the password in secret {uri} (esm reads it from this "
                                    "environment variable)", "secret", secret=True).name
        else:
            t.note("SourceAccessConfigurations",
                   f"{kind} not carried over: not an Amazon MQ access setting")
    source: dict[str, Any] = {"type": "rabbitmq", "url": _rabbitmq_url(t, value, user, vhost)}
    if password is not None:
        source["password_env"] = password
    queues = t.take("Queues")
    source["queues"] = [str(q) for q in queues] if isinstance(queues, list) and queues else [
        t.text(queues if isinstance(queues, Symbol) else None, "MQ_QUEUE",
               "the broker queue to read", "orders")]
    return source


def _rabbitmq_url(t: Translation, value: Any, user: str | None, vhost: str | None) -> str:
    """amqps://USER@HOST[:PORT]/VHOST: the `--endpoint` URL given, else a host variable."""
    endpoint = t.endpoint(value)
    if endpoint:
        parts = urlsplit(endpoint)
        scheme, host = parts.scheme or "amqps", parts.netloc.rpartition("@")[2]
        path = parts.path.lstrip("/")
    else:
        arn = parse_arn(value)
        stem = env_name(resource_name(arn)) if arn else t.stem_of(value, "broker")
        about = value.description if isinstance(value, Symbol) else str(value)
        scheme, path = "amqps", ""
        host = t.variable(stem + "_BROKER_HOST", f"host:port of the Amazon MQ broker {about}'s "
                          "AMQPS endpoint (in the Amazon MQ console)",
                          "b-1234.mq.us-east-1.amazonaws.com:5671")
    if vhost is not None:
        path = quote(vhost, safe="") if vhost != "/" else ""
    return f"{scheme}://{user + '@' if user else ''}{host}/{path}"


def _engine(t: Translation, value: Any, configs: list[dict[str, Any]]) -> str:
    if any(c.get("Type") == "VIRTUAL_HOST" for c in configs):
        return "rabbitmq"
    resolver = t.aws.resolver
    origin = t.aws.source_origin
    broker = resolver.resources.get(origin or "") if resolver else None
    props = broker.get("Properties") if isinstance(broker, dict) else None
    if isinstance(props, dict) and isinstance(props.get("EngineType"), str):
        return "rabbitmq" if props["EngineType"].upper() == "RABBITMQ" else "activemq"
    t.note("EventSourceArn", "the broker's engine is not known: ActiveMQ assumed; write "
                             "type: rabbitmq for a RabbitMQ broker")
    return "activemq"


def _url(t: Translation, value: Any, engine: str) -> str:
    endpoint = t.endpoint(value)
    if endpoint:
        return endpoint
    arn = parse_arn(value)
    stem = env_name(resource_name(arn)) if arn else t.stem_of(value, "broker")
    about = value.description if isinstance(value, Symbol) else str(value)
    return t.variable(stem + "_BROKER_URL", f"AMQP URL of the Amazon MQ broker {about} "
                      "(its endpoints in the Amazon MQ console)", _EXAMPLE_URL[engine])
