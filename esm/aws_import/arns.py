"""ARNs of event sources and destinations, and the `--endpoint ARN=URL` overrides.

An ARN here may hold `${VARIABLE}` references (`arn:aws:sqs:${AWS_REGION}:...`) where the
template left a part to the deployment; they never contain `:`, so splitting still works.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

# ARN service → the importer's source kind.
SOURCE_KINDS = {"sqs": "sqs", "kinesis": "kinesis", "dynamodb": "dynamodb", "kafka": "msk",
                "mq": "mq"}
_DOMAIN = {"aws-cn": "amazonaws.com.cn"}


@dataclass(frozen=True, slots=True)
class Arn:
    partition: str
    service: str
    region: str
    account: str
    resource: str

    @property
    def literal_region(self) -> str | None:
        """The region when the ARN names one outright (not a `${VARIABLE}`)."""
        return self.region if self.region and "${" not in self.region else None


def parse_arn(value: Any) -> Arn | None:
    if not isinstance(value, str) or not value.startswith("arn:"):
        return None
    parts = value.split(":", 5)
    if len(parts) != 6:
        return None
    return Arn(*parts[1:])


def queue_url(arn: Arn) -> str:
    """`arn:aws:sqs:REGION:ACCOUNT:NAME` → `https://sqs.REGION.amazonaws.com/ACCOUNT/NAME`."""
    domain = _DOMAIN.get(arn.partition, "amazonaws.com")
    return f"https://sqs.{arn.region}.{domain}/{arn.account}/{arn.resource}"


def stream_of_consumer(arn: Arn) -> str | None:
    """A Kinesis stream consumer ARN (`stream/NAME/consumer/C:TIME`) → its stream's ARN."""
    head, found, _ = arn.resource.partition("/consumer/")
    if not found:
        return None
    return f"arn:{arn.partition}:{arn.service}:{arn.region}:{arn.account}:{head}"


def resource_name(arn: Arn) -> str:
    """A short name for mapping names: queue, stream, table, topic, cluster or broker."""
    pieces = arn.resource.replace(":", "/").split("/")
    if pieces[0] in ("table", "stream", "cluster", "broker", "function") and len(pieces) > 1:
        return pieces[1]
    return pieces[-1]


def function_name(value: str) -> str:
    """`arn:aws:lambda:R:A:function:NAME[:QUALIFIER]` or `A:function:NAME` → NAME."""
    parts = value.split(":")
    if "function" in parts:
        index = parts.index("function")
        if index + 1 < len(parts):
            return parts[index + 1]
    return value


class Endpoints:
    """`--endpoint KEY=URL` pairs. KEY is an ARN, or a template's logical ID, or a function
    name; `lookup` tries each key a value may answer to."""

    def __init__(self, pairs: dict[str, str]) -> None:
        self._pairs = pairs
        self.used: set[str] = set()

    @classmethod
    def parse(cls, options: list[str]) -> Endpoints:
        pairs: dict[str, str] = {}
        for option in options:
            key, found, url = option.partition("=")
            if not found or not key or not url:
                raise ValueError(f"--endpoint {option!r}: expected ARN=URL")
            pairs[key] = url
        return cls(pairs)

    def lookup(self, *keys: str | None) -> str | None:
        for key in keys:
            if key and key in self._pairs:
                self.used.add(key)
                return self._pairs[key]
        return None

    def unused(self) -> list[str]:
        return sorted(set(self._pairs) - self.used)


def queue_at(endpoint: str, arn: Arn | None) -> tuple[str, str]:
    """A queue's `--endpoint` as (queue URL, endpoint URL). A URL with a path is the queue's
    own; a bare origin gets ACCOUNT/NAME from the ARN, as ElasticMQ lays its queues out."""
    parts = urlsplit(endpoint)
    origin = f"{parts.scheme}://{parts.netloc}"
    if parts.path.strip("/") or arn is None:
        return endpoint, origin
    return f"{origin}/{arn.account}/{arn.resource}", origin
