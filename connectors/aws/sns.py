"""On-failure destination: an SNS topic (DESIGN §7, ESM-SPEC §4.5).

Each notice is one Publish, durable once SNS answers. SNS messages are limited to 256 KB
(ESM-SPEC §4.5), so an oversized notice loses its `payload` (see `connectors.aws.clients`).
FIFO topics get the mapping name as MessageGroupId and a fresh deduplication id.
Thread-safe: one boto3 client shared by lane workers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from connectors.aws.clients import (
    AwsSettings,
    LazyClient,
    encode_notice,
    fifo_params,
    region_for,
    send_durably,
)
from esm.interfaces import ConnectorContext
from esm.records import Record

SNS_MAX_MESSAGE_BYTES = 262144


@dataclass(frozen=True, slots=True, kw_only=True)
class SnsDestinationSettings(AwsSettings):
    """`on_failure:` keys for `type: sns`."""

    topic_arn: str = field(metadata={"doc": "ARN of the topic notices are published to"})
    subject: str | None = field(default=None, metadata={
        "doc": "optional Subject for email subscribers (≤ 100 characters)"})


class SnsDestination:
    Settings: ClassVar[type[SnsDestinationSettings]] = SnsDestinationSettings

    def __init__(self, settings: SnsDestinationSettings, context: ConnectorContext,
                 client: Any = None) -> None:
        self._settings = settings
        self._mapping = context.mapping
        self._lazy = LazyClient("sns", settings, region_for(settings, settings.topic_arn))
        self._client = client

    def send(self, notice: Mapping[str, Any], records: Sequence[Record]) -> None:
        params: dict[str, Any] = {
            "TopicArn": self._settings.topic_arn,
            "Message": encode_notice(notice, SNS_MAX_MESSAGE_BYTES),
        }
        if self._settings.subject:
            params["Subject"] = self._settings.subject[:100]
        if self._settings.topic_arn.endswith(".fifo"):
            params.update(fifo_params(self._mapping))
        client = self._client or self._lazy.get()
        send_durably(client.publish, f"Publish to {self._settings.topic_arn}", **params)

    def close(self) -> None:
        self._lazy.close()
