"""On-failure destination: an SQS queue (DESIGN §7, ESM-SPEC §4.5).

Each notice is one SendMessage; it is durable once SQS answers (SQS stores a message
redundantly before acknowledging it). FIFO queues get the mapping name as MessageGroupId
and a fresh deduplication id per notice (botocore's own retries reuse it, so a retried
send is not stored twice). Thread-safe: one boto3 client shared by lane workers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from connectors.aws import (
    AwsSettings,
    LazyClient,
    encode_notice,
    fifo_params,
    region_for,
    send_durably,
)
from esm.interfaces import ConnectorContext
from esm.records import Record


@dataclass(frozen=True, slots=True, kw_only=True)
class SqsDestinationSettings(AwsSettings):
    """`on_failure:` keys for `type: sqs`."""

    queue_url: str = field(metadata={"doc": "URL of the queue notices are sent to"})
    max_message_bytes: int = field(default=262144, metadata={
        "min": 1024, "max": 1048576,
        "doc": "largest message the queue accepts; bigger notices lose their payload"})


class SqsDestination:
    Settings: ClassVar[type[SqsDestinationSettings]] = SqsDestinationSettings

    def __init__(self, settings: SqsDestinationSettings, context: ConnectorContext,
                 client: Any = None) -> None:
        self._settings = settings
        self._mapping = context.mapping
        self._lazy = LazyClient("sqs", settings, region_for(settings, settings.queue_url))
        self._client = client

    def send(self, notice: Mapping[str, Any], records: Sequence[Record]) -> None:
        params: dict[str, Any] = {
            "QueueUrl": self._settings.queue_url,
            "MessageBody": encode_notice(notice, self._settings.max_message_bytes),
        }
        if self._settings.queue_url.endswith(".fifo"):
            params.update(fifo_params(self._mapping))
        client = self._client or self._lazy.get()
        send_durably(client.send_message, f"SendMessage to {self._settings.queue_url}", **params)

    def close(self) -> None:
        self._lazy.close()
