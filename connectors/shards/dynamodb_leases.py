"""The DynamoDB lease table (`checkpoint: {type: dynamodb, table: ...}`): shard leases and
checkpoints shared by several replicas, with conditional writes (see `leases.py`).

One item per (mapping, shard), keyed `leaseKey = "<mapping>/<shardId>"`, with attributes
`mapping`, `shardId`, `leaseOwner` (absent when free), `leaseCounter`, `checkpoint`,
`parentShardIds` and `window` (a tumbling-window document, when the mapping has windows).
Several mappings may share a table. Reads are strongly consistent.
"""

from __future__ import annotations

import logging
from typing import Any

from connectors.aws.clients import error_code
from connectors.shards.leases import Lease
from esm.errors import SourceUnavailable

log = logging.getLogger(__name__)

_CONDITION_FAILED = "ConditionalCheckFailedException"


class DynamoDBLeaseTable:
    """Lease rows in a DynamoDB table; created (on-demand billing) on first use if asked."""

    def __init__(self, client: Any, table: str, create_table: bool = True) -> None:
        self.client = client
        self.table = table
        self.create_table = create_table
        self._ready = False

    def _ensure_table(self) -> None:
        if self._ready:
            return
        try:
            self.client.describe_table(TableName=self.table)
        except Exception as exc:
            if error_code(exc) != "ResourceNotFoundException" or not self.create_table:
                raise SourceUnavailable(f"lease table {self.table}: {error_code(exc)}: {exc}") \
                    from exc
            self._create()
        self._ready = True

    def _create(self) -> None:
        try:
            self.client.create_table(
                TableName=self.table, BillingMode="PAY_PER_REQUEST",
                KeySchema=[{"AttributeName": "leaseKey", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "leaseKey", "AttributeType": "S"}])
            self.client.get_waiter("table_exists").wait(
                TableName=self.table, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
            log.info("created lease table %s", self.table)
        except Exception as exc:
            if error_code(exc) != "ResourceInUseException":  # another replica created it
                raise SourceUnavailable(f"creating lease table {self.table}: {exc}") from exc

    def _update(self, mapping: str, shard_id: str, **params: Any) -> bool:
        """One conditional UpdateItem; False when its condition did not hold."""
        self._ensure_table()
        try:
            self.client.update_item(TableName=self.table,
                                    Key={"leaseKey": {"S": f"{mapping}/{shard_id}"}}, **params)
            return True
        except Exception as exc:
            if error_code(exc) == _CONDITION_FAILED:
                return False
            raise SourceUnavailable(f"lease table {self.table}: {error_code(exc)}: {exc}") \
                from exc

    def list(self, mapping: str) -> list[Lease]:
        self._ensure_table()
        leases: list[Lease] = []
        params: dict[str, Any] = {
            "TableName": self.table, "ConsistentRead": True,
            "FilterExpression": "#m = :m", "ExpressionAttributeNames": {"#m": "mapping"},
            "ExpressionAttributeValues": {":m": {"S": mapping}}}
        while True:
            try:
                page = self.client.scan(**params)
            except Exception as exc:
                raise SourceUnavailable(f"lease table {self.table}: {error_code(exc)}: {exc}") \
                    from exc
            leases.extend(_lease(item) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return sorted(leases, key=lambda lease: lease.shard_id)
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def create(self, mapping: str, lease: Lease) -> bool:
        values: dict[str, Any] = {
            ":m": {"S": mapping}, ":s": {"S": lease.shard_id}, ":c": {"N": str(lease.counter)},
            ":cp": {"S": lease.checkpoint},
            ":p": {"L": [{"S": p} for p in lease.parent_ids]}}
        return self._update(
            mapping, lease.shard_id, ConditionExpression="attribute_not_exists(leaseKey)",
            UpdateExpression="SET #m = :m, shardId = :s, leaseCounter = :c, #cp = :cp,"
                             " parentShardIds = :p",
            ExpressionAttributeNames={"#m": "mapping", "#cp": "checkpoint"},
            ExpressionAttributeValues=values)

    def renew(self, mapping: str, shard_id: str, owner: str, counter: int) -> bool:
        return self._update(
            mapping, shard_id, UpdateExpression="SET leaseCounter = leaseCounter + :one",
            ConditionExpression="leaseOwner = :o AND leaseCounter = :c",
            ExpressionAttributeValues={":o": {"S": owner}, ":c": {"N": str(counter)},
                                       ":one": {"N": "1"}})

    def take(self, mapping: str, shard_id: str, owner: str, counter: int) -> bool:
        return self._update(
            mapping, shard_id,
            UpdateExpression="SET leaseOwner = :o, leaseCounter = leaseCounter + :one",
            ConditionExpression="leaseCounter = :c",
            ExpressionAttributeValues={":o": {"S": owner}, ":c": {"N": str(counter)},
                                       ":one": {"N": "1"}})

    def checkpoint(self, mapping: str, shard_id: str, owner: str, checkpoint: str) -> bool:
        return self._set_owned(mapping, shard_id, owner, "checkpoint", checkpoint)

    def save_window(self, mapping: str, shard_id: str, owner: str, window: str) -> bool:
        return self._set_owned(mapping, shard_id, owner, "window", window)

    def _set_owned(self, mapping: str, shard_id: str, owner: str, attribute: str,
                   value: str) -> bool:
        """Set a string attribute on condition that `owner` holds the lease (both names
        are DynamoDB reserved words, hence the placeholder)."""
        return self._update(
            mapping, shard_id, UpdateExpression="SET #a = :v",
            ConditionExpression="leaseOwner = :o", ExpressionAttributeNames={"#a": attribute},
            ExpressionAttributeValues={":o": {"S": owner}, ":v": {"S": value}})

    def release(self, mapping: str, shard_id: str, owner: str) -> bool:
        return self._update(
            mapping, shard_id, UpdateExpression="REMOVE leaseOwner",
            ConditionExpression="leaseOwner = :o",
            ExpressionAttributeValues={":o": {"S": owner}})

    def close(self) -> None:
        close = getattr(self.client, "close", None)
        if callable(close):
            close()


def _lease(item: dict[str, Any]) -> Lease:
    return Lease(
        shard_id=item["shardId"]["S"],
        owner=item["leaseOwner"]["S"] if "leaseOwner" in item else None,
        counter=int(item["leaseCounter"]["N"]),
        checkpoint=item["checkpoint"]["S"],
        parent_ids=tuple(p["S"] for p in item.get("parentShardIds", {}).get("L", [])),
        window=item["window"]["S"] if "window" in item else None)
