"""Settings of the Kafka source and the cross-field rules the config check applies to them.

AWS parameter names in snake_case (ESM-SPEC §1.2): `topics`, `consumer_group_id`,
`starting_position`, `starting_position_timestamp`; `bootstrap_servers` is
`SelfManagedEventSource.Endpoints.KAFKA_BOOTSTRAP_SERVERS`. Security fields come from
`KafkaSecuritySettings`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from connectors.kafka.msk import arn_problems
from connectors.kafka.security import KafkaSecuritySettings, security_problems

StartingPosition = Literal["TRIM_HORIZON", "LATEST", "AT_TIMESTAMP"]
_RESETS = {"TRIM_HORIZON": "earliest", "LATEST": "latest", "AT_TIMESTAMP": "earliest"}

# ESM-SPEC §1.2: ConsumerGroupId 1–200 chars of this set; topic names per the Topics rule.
_GROUP_ID = re.compile(r"[a-zA-Z0-9\-/*:_+=.@]{1,200}")
_TOPIC = re.compile(r"[a-zA-Z0-9\-_.]{1,249}")


@dataclass(frozen=True, slots=True, kw_only=True)
class KafkaSourceSettings(KafkaSecuritySettings):
    """How to reach the cluster, what to read, and where a new consumer group starts."""

    bootstrap_servers: tuple[str, ...] = field(metadata={
        "doc": "host:port of one or more brokers"})
    topics: tuple[str, ...] = field(metadata={"doc": "topics to read (AWS allows exactly 1)"})
    consumer_group_id: str = field(metadata={
        "doc": "consumer group; its committed offsets override starting_position"})
    starting_position: StartingPosition = field(default="TRIM_HORIZON", metadata={
        "doc": "where a group without committed offsets starts: TRIM_HORIZON (earliest), "
               "LATEST or AT_TIMESTAMP"})
    starting_position_timestamp: float | None = field(default=None, metadata={
        "doc": "epoch seconds, required with AT_TIMESTAMP, not in the future"})
    client_id: str = field(default="esm", metadata={"doc": "Kafka client.id"})
    session_timeout_seconds: float = field(default=45.0, metadata={
        "min": 6, "max": 300, "doc": "group session timeout; a dead replica's partitions "
                                     "move after this long"})
    request_timeout_seconds: float = field(default=30.0, metadata={
        "min": 1, "max": 300, "doc": "timeout of one broker request (commit, offsets)"})
    msk_cluster_arn: str | None = field(default=None, metadata={
        "doc": "Amazon MSK cluster ARN: events take MSK's shape (eventSource aws:kafka and "
               "this eventSourceArn); default: self-managed Kafka's"})


def source_problems(settings: KafkaSourceSettings, mapping_data: Mapping[str, Any],
                    environ: Mapping[str, str], now: float) -> list[str]:
    """Every cross-field problem of a Kafka mapping, as `path: problem` strings relative to
    the mapping (`source.topics: ...`), the form `check_mapping` hands back."""
    problems = [f"source.{problem}" for problem in settings_problems(settings, environ, now)]
    return problems + _destination_problems(settings, mapping_data)


def settings_problems(settings: KafkaSourceSettings, environ: Mapping[str, str],
                      now: float) -> list[str]:
    """Every cross-field problem of the source settings, as `key: problem` strings."""
    problems: list[str] = []
    if not settings.bootstrap_servers:
        problems.append("bootstrap_servers: must name at least one host:port")
    for server in settings.bootstrap_servers:
        host, _, port = server.rpartition(":")
        if not host or not port.isdigit():
            problems.append(f"bootstrap_servers: {server!r} is not host:port")
    if not settings.topics:
        problems.append("topics: must name at least one topic")
    for topic in settings.topics:
        if not _TOPIC.fullmatch(topic) or topic.startswith("."):
            problems.append(f"topics: {topic!r} is not a valid topic name")
    if not _GROUP_ID.fullmatch(settings.consumer_group_id):
        problems.append("consumer_group_id: must be 1-200 characters of "
                        "a-z A-Z 0-9 - / * : _ + = . @")
    problems += _starting_position_problems(settings, now)
    problems += arn_problems(settings.msk_cluster_arn)
    problems += security_problems(settings, environ)
    return problems


def _starting_position_problems(settings: KafkaSourceSettings, now: float) -> list[str]:
    """ESM-SPEC §1.2: StartingPositionTimestamp goes with AT_TIMESTAMP, never in the future."""
    stamp = settings.starting_position_timestamp
    if settings.starting_position != "AT_TIMESTAMP":
        if stamp is not None:
            return ["starting_position_timestamp: only used with AT_TIMESTAMP"]
        return []
    if stamp is None:
        return ["starting_position_timestamp: required when starting_position is AT_TIMESTAMP"]
    if stamp > now:
        return ["starting_position_timestamp: cannot be in the future"]
    return []


def _destination_problems(settings: KafkaSourceSettings,
                          mapping_data: Mapping[str, Any]) -> list[str]:
    """ESM-SPEC §4.4 / §8 item 59: a Kafka topic destination cannot be a source topic."""
    destination_config = mapping_data.get("destination_config") or {}
    on_failure = destination_config.get("on_failure") if isinstance(
        destination_config, Mapping) else None
    if not isinstance(on_failure, Mapping) or on_failure.get("type") != "kafka":
        return []
    topic = on_failure.get("topic")
    if topic in settings.topics:
        return [f"destination_config.on_failure.topic: {topic!r} is a source topic; "
                "a Kafka on-failure destination must be another topic"]
    return []


def consumer_config(s: KafkaSourceSettings) -> dict[str, Any]:
    """librdkafka's consumer configuration for the settings (brokers, security, logs and
    callbacks are added by the source); auto-commit and the offset store are off: esm
    commits on ack."""
    session_ms = int(s.session_timeout_seconds * 1000)
    return {
        "group.id": s.consumer_group_id, "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": _RESETS[s.starting_position],
        "session.timeout.ms": session_ms,
        "heartbeat.interval.ms": min(3000, session_ms // 3),
        "socket.timeout.ms": int(s.request_timeout_seconds * 1000),
        # Records of aborted transactions never reach a function, as with a Java consumer
        # reading read_committed (librdkafka's default, kept explicit).
        "isolation.level": "read_committed",
        # An idle partition's fetch is held by the broker this long; a partition just
        # resumed waits behind it (500 ms by default: half-second stalls).
        "fetch.wait.max.ms": 100,
        # Bounded prefetch (librdkafka keeps up to 64 MiB / 100k messages by default): the
        # daemon's memory stays small whatever the backlog. 1 MiB queued and 1 MiB fetch
        # responses (a larger first record batch is still returned whole) read as fast as
        # 4 and 8 MiB did in tests/bench, with 10-12 MiB less peak RSS (66 -> 55 MiB).
        "queued.max.messages.kbytes": 1024, "queued.min.messages": 20000,
        "fetch.max.bytes": 1024 * 1024,
        # Once those bounds are reached librdkafka waits this long before fetching the
        # partition again (1 s by default: the reader sat idle behind a drained queue).
        "fetch.queue.backoff.ms": 20,
    }
