"""The `dynamodb` window store (`window_state: {type: dynamodb, table: …}`): tumbling-window
documents of a source that keeps no windows itself (Kafka), one item per (mapping, lane)
in a DynamoDB table keyed `windowKey` (created on first use, on demand), shared by every
replica, so a partition's window moves with the partition at a rebalance. Writes are
PutItem: durable when `save_window` returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson

from connectors.aws.clients import AwsSettings, LazyClient, region_for
from esm.errors import SourceUnavailable
from esm.interfaces import ConnectorContext


@dataclass(frozen=True, slots=True, kw_only=True)
class DynamoDBWindowStoreSettings(AwsSettings):
    table: str = field(default="esm-windows", metadata={
        "min_length": 3, "max_length": 255, "doc": "table holding the window documents"})
    create_table: bool = field(default=True, metadata={
        "doc": "create the table (on demand) when it does not exist"})


class DynamoDBWindowStore:
    """Window documents in a DynamoDB table; the client is built on first use."""

    Settings: ClassVar[type[DynamoDBWindowStoreSettings]] = DynamoDBWindowStoreSettings

    def __init__(self, settings: DynamoDBWindowStoreSettings,
                 context: ConnectorContext) -> None:
        self.settings = settings
        self.mapping = context.mapping
        self._lazy = LazyClient("dynamodb", settings, region_for(settings))
        self._ready = False

    def _client(self) -> Any:
        client = self._lazy.get()
        if not self._ready:
            self._ensure_table(client)
            self._ready = True
        return client

    def _ensure_table(self, client: Any) -> None:
        try:
            client.describe_table(TableName=self.settings.table)
            return
        except client.exceptions.ResourceNotFoundException:
            if not self.settings.create_table:
                raise SourceUnavailable(f"window store table {self.settings.table} "
                                        "does not exist") from None
        client.create_table(
            TableName=self.settings.table, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "windowKey", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "windowKey", "AttributeType": "S"}])
        client.get_waiter("table_exists").wait(TableName=self.settings.table)

    def load_window(self, lane: str) -> Mapping[str, Any] | None:
        try:
            item = self._client().get_item(
                TableName=self.settings.table, ConsistentRead=True,
                Key={"windowKey": {"S": f"{self.mapping}/{lane}"}}).get("Item")
        except Exception as exc:  # botocore errors: the reader restarts, nothing is lost
            raise SourceUnavailable(f"window store {self.settings.table}: {exc}") from exc
        return None if item is None else dict(orjson.loads(item["document"]["S"]))

    def save_window(self, lane: str, document: Mapping[str, Any]) -> None:
        try:
            self._client().put_item(TableName=self.settings.table, Item={
                "windowKey": {"S": f"{self.mapping}/{lane}"},
                "document": {"S": orjson.dumps(document).decode()}})
        except Exception as exc:  # botocore errors: the reader restarts, nothing is lost
            raise SourceUnavailable(f"window store {self.settings.table}: {exc}") from exc

    def close(self) -> None:
        pass
