"""On-failure destination: an S3 bucket (DESIGN §7, ESM-SPEC §4.5, checklist 55).

Each notice is one PutObject, durable once S3 answers. The object key is the one AWS
writes: `aws/lambda/<ESM-UUID>/<shardID>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<random UUID>`,
where the ESM UUID is derived from the mapping name (stable across restarts) unless
`mapping_uuid` is set, and the shard is the batch info's `shardId` (else the lane). The
body is the whole notice, `payload` included, as AWS writes for S3. Thread-safe.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

import orjson

from connectors.aws.clients import AwsSettings, LazyClient, region_for, send_durably
from esm.interfaces import ConnectorContext
from esm.records import Record

_NAMESPACE = uuid.UUID("6f1d3c2a-8b4e-4c59-9a57-2f0e1d3b7c11")  # esm's, for mapping UUIDs


@dataclass(frozen=True, slots=True, kw_only=True)
class S3DestinationSettings(AwsSettings):
    """`on_failure:` keys for `type: s3`."""

    bucket: str = field(metadata={
        "pattern": r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]", "doc": "bucket notices are written to"})
    mapping_uuid: str | None = field(default=None, metadata={
        "doc": "the ESM UUID in object keys; default: derived from the mapping name"})


def object_key(mapping_uuid: str, shard: str, at: float, unique: str) -> str:
    """AWS's key layout for S3 on-failure destinations (ESM-SPEC §4.5)."""
    moment = datetime.fromtimestamp(at, tz=UTC)
    return (f"aws/lambda/{mapping_uuid}/{shard}/{moment:%Y/%m/%d}/"
            f"{moment:%Y-%m-%dT%H.%M.%S}-{unique}")


class S3Destination:
    Settings: ClassVar[type[S3DestinationSettings]] = S3DestinationSettings

    def __init__(self, settings: S3DestinationSettings, context: ConnectorContext,
                 client: Any = None) -> None:
        self._settings = settings
        self._clock = context.clock
        self.mapping_uuid = settings.mapping_uuid or str(uuid.uuid5(_NAMESPACE, context.mapping))
        self._lazy = LazyClient("s3", settings, region_for(settings))
        self._client = client

    def send(self, notice: Mapping[str, Any], records: Sequence[Record]) -> None:
        key = object_key(self.mapping_uuid, _shard(notice, records), self._clock.now(),
                         str(uuid.uuid4()))
        client = self._client or self._lazy.get()
        send_durably(client.put_object, f"PutObject s3://{self._settings.bucket}/{key}",
                     Bucket=self._settings.bucket, Key=key, Body=orjson.dumps(notice),
                     ContentType="application/json")

    def close(self) -> None:
        self._lazy.close()


def _shard(notice: Mapping[str, Any], records: Sequence[Record]) -> str:
    for key, value in notice.items():
        if key.endswith("BatchInfo") and isinstance(value, Mapping) and value.get("shardId"):
            return str(value["shardId"])
    return records[0].lane if records else "unknown"
