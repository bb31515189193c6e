"""DynamoDB Streams source on boto3 (`type: dynamodb_streams`) — ESM-SPEC §2.3, §4.3, §5.

Lanes are shards (parents finished before children), positions and batchItemFailures
identifiers are SequenceNumbers, and with parallelization_factor > 1 order holds per item
key (the record's `Keys`, canonicalised). Shards are polled at most 4 times a second each
(`poll_interval_seconds`, ESM-SPEC §5). Checkpoints and leases: `connectors.shards`
(reader, leases). Filtering sees the record as it sits in the event (ESM-SPEC §3.4).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import orjson

from connectors.shards.model import (
    LATEST,
    TRIM_HORIZON,
    Page,
    ShardInfo,
    aws_call,
    epoch_seconds,
    is_sequence,
    jsonable,
)
from connectors.shards.settings import ShardSourceSettings
from connectors.shards.source import ShardSource, shard_traits
from esm.interfaces import SourceTraits
from esm.records import Record

MAX_LIMIT = 1000  # GetRecords Limit maximum for DynamoDB Streams


@dataclass(frozen=True, slots=True, kw_only=True)
class DynamoDBStreamsSettings(ShardSourceSettings):
    """`source:` keys for `type: dynamodb_streams`."""

    stream_arn: str = field(metadata={
        "pattern": r"arn:aws[\w-]*:dynamodb:[\w-]*:\d*:table/[^/]+/stream/.+",
        "doc": "the table's stream ARN (LatestStreamArn)"})
    starting_position: Literal["TRIM_HORIZON", "LATEST", "AT_TIMESTAMP"] = field(metadata={
        "doc": "where shards without a checkpoint start (AT_TIMESTAMP is Kinesis only)"})
    poll_interval_seconds: float = field(default=0.25, metadata={
        "min": 0.05, "max": 60, "doc": "pause between GetRecords on one shard (AWS: 4/s)"})


class DynamoDBStreamsApi:
    """StreamApi over the boto3 `dynamodbstreams` client."""

    def __init__(self, client: Any, stream_arn: str) -> None:
        self.client = client
        self.stream_arn = stream_arn

    def list_shards(self) -> list[ShardInfo]:
        shards: list[ShardInfo] = []
        params: dict[str, Any] = {"StreamArn": self.stream_arn}
        while True:
            desc = aws_call(self.client.describe_stream, f"Stream not found: {self.stream_arn}"
                            " or DescribeStream", **params)["StreamDescription"]
            for shard in desc.get("Shards", []):
                parent = shard.get("ParentShardId")
                shards.append(ShardInfo(
                    shard["ShardId"], (parent,) if parent else (),
                    shard.get("SequenceNumberRange", {}).get("EndingSequenceNumber")))
            last = desc.get("LastEvaluatedShardId")
            if not last:
                return shards
            params["ExclusiveStartShardId"] = last

    def iterator(self, shard_id: str, checkpoint: str) -> str:
        params: dict[str, Any] = {"StreamArn": self.stream_arn, "ShardId": shard_id}
        if is_sequence(checkpoint):
            params.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=checkpoint)
        else:
            params["ShardIteratorType"] = LATEST if checkpoint == LATEST else TRIM_HORIZON
        return str(aws_call(self.client.get_shard_iterator, "GetShardIterator",
                            **params)["ShardIterator"])

    def read(self, iterator: str, limit: int) -> Page:
        answer = aws_call(self.client.get_records, "GetRecords", ShardIterator=iterator,
                          Limit=min(limit, MAX_LIMIT))
        return Page(answer.get("Records", []), answer.get("NextShardIterator"))

    def sequence_of(self, raw: dict[str, Any]) -> str:
        return str(raw["dynamodb"]["SequenceNumber"])


class DynamoDBStreamsSource(ShardSource):
    """Reads one DynamoDB stream; see the module docstring."""

    Settings: ClassVar[type[DynamoDBStreamsSettings]] = DynamoDBStreamsSettings
    service: ClassVar[str] = "dynamodbstreams"
    traits: ClassVar[SourceTraits] = shard_traits("DDBStreamBatchInfo")
    notice_millis: ClassVar[bool] = False
    settings: DynamoDBStreamsSettings

    @classmethod
    def check_mapping(cls, settings: DynamoDBStreamsSettings,
                      mapping_data: Mapping[str, Any]) -> list[str]:
        """ESM-SPEC §1.2/§1.3: DynamoDB takes only TRIM_HORIZON or LATEST."""
        problems = []
        if settings.starting_position == "AT_TIMESTAMP":
            problems.append("source.starting_position: Unsupported starting position for "
                            f"arn type: {settings.stream_arn}")
        if settings.max_records_per_fetch > MAX_LIMIT:
            problems.append(f"source.max_records_per_fetch: must be at most {MAX_LIMIT} for "
                            "DynamoDB Streams")
        return problems

    def resource_arn(self) -> str | None:
        return self.settings.stream_arn

    def make_api(self, client: Any) -> DynamoDBStreamsApi:
        return DynamoDBStreamsApi(client, self.settings.stream_arn)

    def starting_checkpoint(self) -> str:
        return self.settings.starting_position

    def event_source_arn(self) -> str:
        return self.settings.stream_arn

    def poll_interval_seconds(self) -> float:
        return self.settings.poll_interval_seconds

    def convert(self, raw: dict[str, Any], shard_id: str) -> Record:
        """The event element exactly as AWS shapes it (ESM-SPEC §2.3)."""
        stream = raw.get("dynamodb", {})
        created = epoch_seconds(stream.get("ApproximateCreationDateTime", 0))
        payload: dict[str, Any] = {
            "eventID": raw.get("eventID"), "eventName": raw.get("eventName"),
            "eventVersion": raw.get("eventVersion", "1.1"), "eventSource": "aws:dynamodb",
            "awsRegion": raw.get("awsRegion", self.region),
            "dynamodb": {**jsonable(stream), "ApproximateCreationDateTime": created},
            "eventSourceARN": self.settings.stream_arn,
        }
        if "userIdentity" in raw:
            payload["userIdentity"] = raw["userIdentity"]
        sequence = str(stream["SequenceNumber"])
        keys = payload["dynamodb"].get("Keys")
        return Record(
            lane=shard_id, position=sequence, item_id=sequence, payload=payload,
            size_bytes=len(orjson.dumps(payload)), timestamp=created,
            ordering_key=orjson.dumps(keys, option=orjson.OPT_SORT_KEYS).decode()
            if keys is not None else None)
