"""The one table of connector types: name → "module:Class".

Lookup order: this table, then the entry points `esm.sources` / `esm.targets` /
`esm.destinations` (third-party connectors), then a literal `module:Class`. Classes are
imported only when a mapping uses them, so the core never imports a client library it
does not need (and never imports one at all: DESIGN §2).
"""

from __future__ import annotations

import difflib
import importlib
import re
from importlib.metadata import entry_points
from typing import Literal

from esm.errors import ConfigError

Kind = Literal["sources", "targets", "destinations", "window_stores"]
_DOTTED_NAME = re.compile(r"[^\W\d]\w*(\.[^\W\d]\w*)*")  # `pkg.module`, absolute

SOURCES: dict[str, str] = {
    "memory": "connectors.memory.source:MemorySource",
    "memory_queue": "connectors.memory.source:MemoryQueueSource",
    "redis_streams": "connectors.redis.source:RedisStreamsSource",
    "kafka": "connectors.kafka.source:KafkaSource",
    "sqs": "connectors.sqs.source:SqsSource",
    "dynamodb_streams": "connectors.dynamodb_streams.source:DynamoDBStreamsSource",
    "kinesis": "connectors.kinesis.source:KinesisSource",
    "rabbitmq": "connectors.rabbitmq.source:RabbitMQSource",
    "activemq": "connectors.activemq.source:ActiveMQSource",
}

TARGETS: dict[str, str] = {
    "python": "connectors.python.target:PythonTarget",
    "http": "connectors.http.target:HttpTarget",
    "lambda": "connectors.aws.lambda_target:LambdaTarget",
}

DESTINATIONS: dict[str, str] = {
    "file": "connectors.file.destination:FileDestination",
    "redis_stream": "connectors.redis.destination:RedisStreamDestination",
    "kafka": "connectors.kafka.destination:KafkaDestination",
    "sqs": "connectors.sqs.destination:SqsDestination",
    "sns": "connectors.aws.sns:SnsDestination",
    "s3": "connectors.aws.s3:S3Destination",
}

# Where a source that keeps no windows itself (Kafka) keeps its tumbling-window state.
WINDOW_STORES: dict[str, str] = {
    "sqlite": "connectors.file.window_store:SqliteWindowStore",
    "redis": "connectors.redis.window_store:RedisWindowStore",
    "dynamodb": "connectors.aws.dynamodb_windows:DynamoDBWindowStore",
}

_TABLES: dict[Kind, dict[str, str]] = {
    "sources": SOURCES,
    "targets": TARGETS,
    "destinations": DESTINATIONS,
    "window_stores": WINDOW_STORES,
}


def known_types(kind: Kind) -> list[str]:
    """Every type name usable for `kind`: the table plus installed entry points."""
    names = set(_TABLES[kind])
    names.update(ep.name for ep in entry_points(group=f"esm.{kind}"))
    return sorted(names)


def resolve(kind: Kind, type_name: str) -> type:
    """The connector class for `type_name`; ConfigError naming the choices if unknown."""
    spec = _TABLES[kind].get(type_name)
    if spec is None:
        for ep in entry_points(group=f"esm.{kind}"):
            if ep.name == type_name:
                spec = ep.value
                break
    if spec is None and ":" in type_name:
        spec = type_name
    if spec is None:
        hint = did_you_mean(type_name, known_types(kind))
        raise ConfigError(f"unknown {kind[:-1]} type {type_name!r}{hint}")
    return import_object(spec)


def import_object(spec: str) -> type:
    """Import "module:attr" and return the attribute; ConfigError if that fails."""
    module_name, _, attr = spec.partition(":")
    # Checked before importing: importlib raises TypeError on a relative name (`.:x`), and
    # import hooks may raise anything on names no module can have.
    if not (_DOTTED_NAME.fullmatch(module_name) and attr.isidentifier()):
        raise ConfigError(f"{spec!r} is not of the form module:name")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import {module_name!r} for {spec!r}: {exc}") from exc
    try:
        obj: type = getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"module {module_name!r} has no attribute {attr!r}") from None
    return obj


def did_you_mean(word: str, choices: list[str]) -> str:
    """' (did you mean X?)' when a choice is close to `word`, else ' (expected one of …)'."""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]!r}?)"
    if choices:
        return f" (expected one of: {', '.join(choices)})"
    return ""
