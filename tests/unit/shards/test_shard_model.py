"""Shard model rules without a server: where new shards start, config checks, the example
configs, the Kinesis filter view, and how the adapters translate AWS errors."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from connectors.dynamodb_streams.source import (
    DynamoDBStreamsApi,
    DynamoDBStreamsSettings,
    DynamoDBStreamsSource,
)
from connectors.kinesis.api import KinesisApi
from connectors.kinesis.source import KinesisSettings, KinesisSource, decode_data
from connectors.shards.leases import Lease
from connectors.shards.model import (
    SHARD_END,
    TRIM_HORIZON,
    ExpiredIterator,
    ShardGone,
    ShardInfo,
    Throttled,
    TrimmedData,
    parents_first,
)
from connectors.shards.reader import ShardReader
from esm.clock import FakeClock, iso_utc
from esm.config.loading import load_config
from esm.errors import SourceUnavailable
from esm.interfaces import ConnectorContext
from esm.records import Record

ROOT = Path(__file__).resolve().parents[3]
ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2024-01-01T00:00:00.000"
KIN_ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/orders"


def reader(start: str) -> ShardReader:
    reader = ShardReader.__new__(ShardReader)
    reader.starting_checkpoint = start
    return reader


def test_child_of_a_known_shard_starts_at_trim_horizon_even_with_latest():
    # Given a parent that has a lease row / When its child is first seen / Then no loss
    existing = {"p": Lease("p", None, 0, SHARD_END)}
    assert reader("LATEST").new_checkpoint(ShardInfo("c", ("p",)), existing, {}) == TRIM_HORIZON


def test_latest_skips_closed_shards_and_starts_open_leaves_at_latest():
    # Given a first discovery with a closed parent and its open child under LATEST
    r, fresh = reader("LATEST"), {}
    fresh["p"] = r.new_checkpoint(ShardInfo("p", (), "99"), {}, fresh)
    # When the child is placed / Then the parent is skipped and the child starts at LATEST
    assert fresh["p"] == SHARD_END
    assert r.new_checkpoint(ShardInfo("c", ("p",)), {}, fresh) == "LATEST"


def test_dynamodb_rejects_at_timestamp_with_the_aws_message():
    settings = DynamoDBStreamsSettings(stream_arn=ARN, starting_position="AT_TIMESTAMP")
    assert DynamoDBStreamsSource.check_mapping(settings, {}) == [
        f"source.starting_position: Unsupported starting position for arn type: {ARN}"]


def test_kinesis_filter_view_decodes_json_else_keeps_text():
    assert decode_data(b'{"a": 1}') == {"a": 1}
    assert decode_data(b"plain") == "plain"
    assert decode_data(b"\xff\xfe") == "//4="


def test_notice_timestamps_have_millis_for_kinesis_and_none_for_dynamodb():
    assert iso_utc(1573692486.021, True) == "2019-11-14T00:48:06.021Z"
    assert iso_utc(1573692486.021, False) == "2019-11-14T00:48:06Z"


def test_example_configs_load():
    env = {"ORDERS_STREAM_ARN": ARN, "DLQ_BUCKET": "my-dlq"}
    ddb = load_config([str(ROOT / "config" / "dynamodb_streams_replicated.yaml")], env)
    kin = load_config([str(ROOT / "config" / "kinesis.yaml")], {})
    assert ddb.mappings[0].source.settings.checkpoint.type == "dynamodb"
    assert kin.mappings[0].source.settings.starting_position == "LATEST"


class RaisingClient:
    """A boto3 client stand-in whose every call raises an AWS error with `code`."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __getattr__(self, operation: str) -> Any:
        def call(**params: Any) -> Any:
            raise ClientError({"Error": {"Code": self.code, "Message": "test"}}, operation)
        return call


@pytest.mark.parametrize("code", ["ProvisionedThroughputExceededException",
                                  "LimitExceededException"])
def test_throttled_get_records_and_get_shard_iterator_raise_throttled_in_both_adapters(code):
    # Given a client whose calls are throttled
    apis = [KinesisApi(RaisingClient(code), KIN_ARN, None),
            DynamoDBStreamsApi(RaisingClient(code), ARN)]
    for api in apis:
        # When the reader reads or asks for an iterator / Then it gets Throttled (an empty
        # read for the reader), not SourceUnavailable (a reconnect)
        with pytest.raises(Throttled):
            api.read("iterator", 100)
        with pytest.raises(Throttled):
            api.iterator("shardId-000000000000", TRIM_HORIZON)


def test_throttled_shard_listing_is_source_unavailable():
    with pytest.raises(SourceUnavailable, match="LimitExceededException"):
        KinesisApi(RaisingClient("LimitExceededException"), KIN_ARN, None).list_shards()


@pytest.mark.parametrize(("code", "error"), [
    ("ExpiredIteratorException", ExpiredIterator),
    ("TrimmedDataAccessException", TrimmedData),
    ("InternalFailure", SourceUnavailable)])
def test_get_records_errors_are_translated_at_the_boundary(code, error):
    with pytest.raises(error):
        DynamoDBStreamsApi(RaisingClient(code), ARN).read("iterator", 100)


def test_missing_shard_on_get_shard_iterator_is_shard_gone():
    with pytest.raises(ShardGone):
        KinesisApi(RaisingClient("ResourceNotFoundException"), KIN_ARN, None).iterator(
            "shardId-000000000009", "49590338271490256608559692538361571095921575989136588898")


def test_parents_come_before_children_in_discovery_order():
    # Given a listing where a merge child is listed before its parents
    listed = [ShardInfo("m", ("a", "b")), ShardInfo("b"), ShardInfo("a", ("x",))]
    # Then parents are placed first (a parent missing from the listing is ignored)
    assert [s.shard_id for s in parents_first(listed)] == ["a", "b", "m"]


def test_batch_info_names_the_first_and_last_record_with_each_services_precision():
    # Given a two-record batch from each shard source (no I/O: nothing is opened)
    context = ConnectorContext("m", threading.Event(), FakeClock())
    kinesis = KinesisSource(KinesisSettings(stream_arn=KIN_ARN, starting_position="LATEST",
                                            region="us-east-1"), context)
    ddb = DynamoDBStreamsSource(DynamoDBStreamsSettings(
        stream_arn=ARN, starting_position="LATEST", region="us-east-1"), context)
    records = [Record(lane="shardId-1", position=p, item_id=p, payload={}, size_bytes=2,
                      timestamp=t) for p, t in (("11", 1573692486.021), ("12", 1573692487.5))]
    # When the notices' batch info is built / Then (ESM-SPEC §4.5) Kinesis has milliseconds
    assert kinesis.batch_info(records) == {
        "shardId": "shardId-1", "startSequenceNumber": "11", "endSequenceNumber": "12",
        "approximateArrivalOfFirstRecord": "2019-11-14T00:48:06.021Z",
        "approximateArrivalOfLastRecord": "2019-11-14T00:48:07.500Z",
        "batchSize": 2, "streamArn": KIN_ARN}
    # and DynamoDB none, under its own key
    info = ddb.batch_info(records)
    assert info["approximateArrivalOfLastRecord"] == "2019-11-14T00:48:07Z"
    assert info["streamArn"] == ARN
    assert (KinesisSource.traits.batch_info_key, DynamoDBStreamsSource.traits.batch_info_key) \
        == ("KinesisBatchInfo", "DDBStreamBatchInfo")
    # and an empty batch still has every field
    assert ddb.batch_info([])["batchSize"] == 0 and ddb.batch_info([])["shardId"] is None


def test_notice_timestamps_outside_datetimes_years_are_clamped():
    assert iso_utc(1e12, True) == "9999-12-31T23:59:59.000Z"
    assert iso_utc(-1e12, False) == "0001-01-01T00:00:00Z"
