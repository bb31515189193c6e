"""Settings shared by the shard sources (DynamoDB Streams, Kinesis) and the lease-table
factory they use."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from typing import Literal

from connectors.aws.clients import AwsSettings, make_client
from connectors.shards.leases import LeaseTable
from connectors.shards.sqlite_leases import SqliteLeaseTable


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointSettings:
    """`checkpoint:` — where shard leases and checkpoints live."""

    type: Literal["sqlite", "dynamodb"] = field(default="sqlite", metadata={
        "doc": "sqlite: a local file (one host); dynamodb: a lease table shared by replicas"})
    path: str = field(default="esm-checkpoints.sqlite", metadata={
        "min_length": 1, "doc": "sqlite file, relative to the working directory"})
    table: str | None = field(default=None, metadata={
        "min_length": 3, "max_length": 255, "doc": "DynamoDB lease table name"})
    create_table: bool = field(default=True, metadata={
        "doc": "create the DynamoDB lease table (on-demand billing) when it is missing"})
    region: str | None = field(default=None, metadata={
        "doc": "lease table region; default: the source's"})
    endpoint_url: str | None = field(default=None, metadata={
        "doc": "lease table endpoint; default: the source's endpoint_url"})
    lease_duration_seconds: float = field(default=10.0, metadata={
        "min": 1, "max": 3600,
        "doc": "a lease not renewed for this long may be taken by another replica"})

    def __post_init__(self) -> None:
        if self.type == "dynamodb" and not self.table:
            raise ValueError("checkpoint.table: required when checkpoint.type is dynamodb")


@dataclass(frozen=True, slots=True, kw_only=True)
class ShardSourceSettings(AwsSettings):
    """Keys every shard source accepts besides its stream."""

    checkpoint: CheckpointSettings = field(default_factory=CheckpointSettings, metadata={
        "doc": "lease table and checkpoints"})
    worker_id: str | None = field(default=None, metadata={
        "min_length": 1, "doc": "this replica's lease owner name; default: <host>-<pid>"})
    max_records_per_fetch: int = field(default=1000, metadata={
        "min": 1, "max": 10000, "doc": "GetRecords Limit (DynamoDB allows at most 1000)"})
    shard_discovery_interval_seconds: float = field(default=10.0, metadata={
        "min": 0.1, "max": 3600, "doc": "how often the shard list is read (resharding)"})


def worker_id_for(settings: ShardSourceSettings) -> str:
    return settings.worker_id or f"{socket.gethostname()}-{os.getpid()}"


def build_lease_table(settings: ShardSourceSettings, region: str) -> LeaseTable:
    """The configured lease table (no I/O until first use)."""
    cp = settings.checkpoint
    if cp.type == "sqlite":
        return SqliteLeaseTable(cp.path)
    from connectors.shards.dynamodb_leases import DynamoDBLeaseTable

    aws = AwsSettings(
        region=cp.region or region, endpoint_url=cp.endpoint_url or settings.endpoint_url,
        access_key_id=settings.access_key_id, secret_access_key=settings.secret_access_key,
        session_token=settings.session_token, profile=settings.profile,
        connect_timeout_seconds=settings.connect_timeout_seconds,
        read_timeout_seconds=settings.read_timeout_seconds, max_attempts=settings.max_attempts)
    client = make_client("dynamodb", aws, region=cp.region or region)
    return DynamoDBLeaseTable(client, str(cp.table), create_table=cp.create_table)
