"""On-failure destination: an SQS queue (DESIGN §7, ESM-SPEC §4.5).

Each notice is one SendMessage; it is durable once SQS answers (SQS stores a message
redundantly before acknowledging it). FIFO queues get the mapping name as MessageGroupId
and a fresh deduplication id per notice (botocore's own retries reuse it, so a retried
send is not stored twice). Thread-safe: one boto3 client shared by lane workers.

`iter_notices` reads the queue back for `esm redrive` (esm.redrive.sources): it receives
notices with a visibility timeout that covers their replay, yields each with an `ack` that
deletes it, and when the run ends (or is interrupted) makes the notices it still holds
visible again at once. Notice ids are `sqs:<requestContext.requestId>`, so a notice stored
twice (a retried send) is replayed once and both copies are deleted. A notice that fails
again stays in the queue. FIFO queues hold one message group per mapping and hand out no
more of a group while some of it is in flight, so a notice that fails again ends the run
there, keeping the order; the next run starts with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson

from connectors.aws.clients import (
    AwsSettings,
    LazyClient,
    encode_notice,
    error_code,
    fifo_params,
    make_client,
    region_for,
    send_durably,
)
from esm.errors import DestinationError
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


# How long a received notice stays invisible while it is replayed; the ones still held when
# the run ends are made visible at once, so this matters only after a crash (kill -9).
REDRIVE_VISIBILITY_SECONDS = 300
Notice = tuple[str, dict[str, Any], Callable[[], None]]


def iter_notices(settings: SqsDestinationSettings, environ: Mapping[str, str], *,
                 client: Any = None, wait_seconds: int = 1,
                 visibility_seconds: int = REDRIVE_VISIBILITY_SECONDS) -> Iterator[Notice]:
    """`esm redrive`'s reader: (id, notice, ack) for every notice, until a receive of
    `wait_seconds` finds the queue empty; see the module docstring."""
    url = settings.queue_url
    own = client is None
    client = client or make_client("sqs", settings, region=region_for(settings, url),
                                   extra_read_timeout_seconds=wait_seconds)
    held: dict[str, str] = {}  # MessageId → latest receipt handle, not deleted yet
    try:
        while True:
            messages = _call(client.receive_message, f"ReceiveMessage on {url}", QueueUrl=url,
                             MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds,
                             VisibilityTimeout=visibility_seconds).get("Messages") or []
            if not messages:
                return
            # All are held before the first is yielded: an interrupted run gives them back.
            fresh = [m for m in messages if m["MessageId"] not in held]
            held.update((m["MessageId"], m["ReceiptHandle"]) for m in messages)
            for message in fresh:  # not the ones seen before that came back after a timeout
                yield _entry(client, url, message, held)
    finally:
        _make_visible(client, url, list(held.values()))
        if own:
            client.close()


def _entry(client: Any, url: str, message: Mapping[str, Any], held: dict[str, str]) -> Notice:
    message_id = message["MessageId"]
    try:
        notice = orjson.loads(message.get("Body") or "")
    except orjson.JSONDecodeError:
        notice = None
    notice = notice if isinstance(notice, dict) else {}
    request_id = (notice.get("requestContext") or {}).get("requestId")
    notice_id = f"sqs:{request_id}" if request_id else f"sqs-message:{message_id}"

    def ack() -> None:
        _call(client.delete_message, f"DeleteMessage on {url}", QueueUrl=url,
              ReceiptHandle=held[message_id])
        del held[message_id]

    return notice_id, notice, ack


def _make_visible(client: Any, url: str, handles: list[str]) -> None:
    for start in range(0, len(handles), 10):  # the batch limit (ESM-SPEC §4.2)
        entries = [{"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                   for i, handle in enumerate(handles[start:start + 10])]
        try:
            client.change_message_visibility_batch(QueueUrl=url, Entries=entries)
        except Exception:  # best effort: they come back after the visibility timeout anyway
            return


def _call(operation: Callable[..., Any], what: str, **params: Any) -> Any:
    try:
        return operation(**params)
    except Exception as exc:  # ClientError / BotoCoreError
        raise DestinationError(f"{what} failed: {error_code(exc)}: {exc}") from exc
