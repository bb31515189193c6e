"""Kinesis Data Streams source on boto3 (`type: kinesis`) — ESM-SPEC §2.2, §3.4, §4.3, §5.

Lanes are shards (parents, including a merge's adjacent parent, finished before children),
positions and batchItemFailures identifiers are sequence numbers, and with
parallelization_factor > 1 order holds per partition key. Each shard is polled about once a
second (`poll_interval_seconds`, ESM-SPEC §5). Filtering sees the `kinesis` object with
`data` base64-decoded, then JSON-parsed when it is JSON, else the plain text, so a JSON
data pattern drops non-JSON records (ESM-SPEC §3.4). Not supported: enhanced fan-out
consumers and KPL de-aggregation.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import orjson

from connectors.kinesis.api import KinesisApi
from connectors.shards.model import epoch_seconds, initial_checkpoint
from connectors.shards.settings import ShardSourceSettings
from connectors.shards.source import ShardSource, shard_traits
from esm.interfaces import SourceTraits
from esm.records import Record


@dataclass(frozen=True, slots=True, kw_only=True)
class KinesisSettings(ShardSourceSettings):
    """`source:` keys for `type: kinesis`. Name the stream by `stream_arn` or `stream_name`."""

    stream_arn: str | None = field(default=None, metadata={
        "pattern": r"arn:aws[\w-]*:kinesis:[\w-]*:\d*:stream/.+", "doc": "the stream's ARN"})
    stream_name: str | None = field(default=None, metadata={
        "min_length": 1, "max_length": 128, "doc": "the stream's name (instead of the ARN)"})
    starting_position: Literal["TRIM_HORIZON", "LATEST", "AT_TIMESTAMP"] = field(metadata={
        "doc": "where shards without a checkpoint start"})
    starting_position_timestamp: float | None = field(default=None, metadata={
        "min": 0, "doc": "epoch seconds, with starting_position AT_TIMESTAMP"})
    poll_interval_seconds: float = field(default=1.0, metadata={
        "min": 0.2, "max": 60, "doc": "pause between GetRecords on one shard (AWS: 1/s)"})
    invoke_identity_arn: str | None = field(default=None, metadata={
        "doc": "the event's invokeIdentityArn; default: arn:aws:iam::<account>:role/esm"})

    def __post_init__(self) -> None:
        if (self.stream_arn is None) == (self.stream_name is None):
            raise ValueError("set exactly one of stream_arn and stream_name")


class KinesisSource(ShardSource):
    """Reads one Kinesis data stream; see the module docstring."""

    Settings: ClassVar[type[KinesisSettings]] = KinesisSettings
    service: ClassVar[str] = "kinesis"
    traits: ClassVar[SourceTraits] = shard_traits("KinesisBatchInfo")
    notice_millis: ClassVar[bool] = True
    settings: KinesisSettings

    @classmethod
    def check_mapping(cls, settings: KinesisSettings,
                      mapping_data: Mapping[str, Any]) -> list[str]:
        """ESM-SPEC §1.2, checklist 9: AT_TIMESTAMP needs a timestamp not in the future."""
        problems = []
        stamp = settings.starting_position_timestamp
        if settings.starting_position == "AT_TIMESTAMP" and stamp is None:
            problems.append("source.starting_position_timestamp: required with "
                            "starting_position AT_TIMESTAMP")
        if stamp is not None and settings.starting_position != "AT_TIMESTAMP":
            problems.append("source.starting_position_timestamp: only used with "
                            "starting_position AT_TIMESTAMP")
        if stamp is not None and stamp > time.time():
            problems.append("source.starting_position_timestamp: cannot be in the future")
        return problems

    def resource_arn(self) -> str | None:
        return self.settings.stream_arn

    def stream_arn(self) -> str:
        s = self.settings
        if s.stream_arn:
            return s.stream_arn
        return f"arn:aws:kinesis:{self.region}:000000000000:stream/{s.stream_name}"

    def make_api(self, client: Any) -> KinesisApi:
        arn = self.settings.stream_arn
        if arn is None:  # the real ARN (account id) from the service
            summary = client.describe_stream_summary(StreamName=self.settings.stream_name)
            arn = str(summary["StreamDescriptionSummary"]["StreamARN"])
        self._arn = arn
        return KinesisApi(client, arn, self.settings.stream_name)

    def starting_checkpoint(self) -> str:
        s = self.settings
        return initial_checkpoint(s.starting_position, s.starting_position_timestamp)

    def poll_interval_seconds(self) -> float:
        return self.settings.poll_interval_seconds

    @property
    def arn(self) -> str:
        return getattr(self, "_arn", None) or self.stream_arn()

    def event_source_arn(self) -> str:
        return self.arn

    def convert(self, raw: dict[str, Any], shard_id: str) -> Record:
        """The event element exactly as AWS shapes it (ESM-SPEC §2.2)."""
        data: bytes = raw.get("Data", b"")
        arrival = round(epoch_seconds(raw["ApproximateArrivalTimestamp"]), 3)
        sequence = str(raw["SequenceNumber"])
        kinesis = {"kinesisSchemaVersion": "1.0", "partitionKey": raw["PartitionKey"],
                   "sequenceNumber": sequence, "data": base64.b64encode(data).decode("ascii"),
                   "approximateArrivalTimestamp": arrival}
        payload = {"kinesis": kinesis, "eventSource": "aws:kinesis", "eventVersion": "1.0",
                   "eventID": f"{shard_id}:{sequence}", "eventName": "aws:kinesis:record",
                   "invokeIdentityArn": self._identity(), "awsRegion": self.region,
                   "eventSourceARN": self.arn}
        return Record(
            lane=shard_id, position=sequence, item_id=sequence, payload=payload,
            size_bytes=len(orjson.dumps(payload)), timestamp=arrival,
            filter_view={**kinesis, "data": decode_data(data)},
            ordering_key=raw["PartitionKey"])

    def _identity(self) -> str:
        if self.settings.invoke_identity_arn:
            return self.settings.invoke_identity_arn
        account = self.arn.split(":")[4] or "000000000000"
        return f"arn:aws:iam::{account}:role/esm"


def decode_data(data: bytes) -> Any:
    """ESM-SPEC §3.4: JSON when the bytes are JSON, else the text (or, when not UTF-8, the
    base64 text, which no JSON data pattern matches)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii")
