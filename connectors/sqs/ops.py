"""The SQS calls the source makes, with library errors translated at this boundary.

Receive and attribute reads raise `SourceUnavailable` (the supervisor reconnects). Deletes
and visibility changes never raise: a message whose delete failed stays in the queue and
is delivered again after its visibility timeout (at-least-once, ESM-SPEC §7), so the
failure is logged and counted instead of stopping the mapping.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from connectors.aws.clients import error_code, is_transient
from esm.errors import SourceUnavailable

log = logging.getLogger(__name__)

MAX_ENTRIES_PER_CALL = 10  # SQS limit for DeleteMessageBatch / ChangeMessageVisibilityBatch
MAX_VISIBILITY_SECONDS = 43200  # 12 hours, SQS limit
ENTRY_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class QueueAttributes:
    arn: str
    fifo: bool
    visibility_timeout_seconds: int
    redrive_policy: str | None


def read_attributes(client: Any, queue_url: str) -> QueueAttributes:
    """The queue's ARN, type and visibility timeout (read once at open)."""
    try:
        attrs = client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])
    except Exception as exc:  # botocore raises ClientError / BotoCoreError subclasses
        raise SourceUnavailable(f"GetQueueAttributes on {queue_url} failed: "
                                f"{error_code(exc)}: {exc}") from exc
    values = attrs.get("Attributes", {})
    return QueueAttributes(
        arn=values.get("QueueArn", ""),
        fifo=values.get("FifoQueue", "false").lower() == "true" or queue_url.endswith(".fifo"),
        visibility_timeout_seconds=int(values.get("VisibilityTimeout", "30")),
        redrive_policy=values.get("RedrivePolicy"),
    )


def queue_depth(client: Any, queue_url: str) -> int | None:
    """ApproximateNumberOfMessages + NotVisible, or None when it cannot be read."""
    try:
        attrs = client.get_queue_attributes(QueueUrl=queue_url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])
    except Exception as exc:  # a metric must never stop the mapping
        log.debug("queue depth unavailable for %s: %s", queue_url, error_code(exc))
        return None
    values = attrs.get("Attributes", {})
    return (int(values.get("ApproximateNumberOfMessages", "0"))
            + int(values.get("ApproximateNumberOfMessagesNotVisible", "0")))


def receive(client: Any, queue_url: str, max_messages: int, wait_seconds: int,
            visibility_timeout: int | None = None) -> list[dict[str, Any]]:
    """One ReceiveMessage call with every attribute requested (ESM-SPEC §2.1)."""
    params: dict[str, Any] = {
        "QueueUrl": queue_url,
        "MaxNumberOfMessages": max(1, min(10, max_messages)),
        "WaitTimeSeconds": max(0, min(20, wait_seconds)),
        "AttributeNames": ["All"],
        "MessageSystemAttributeNames": ["All"],
        "MessageAttributeNames": ["All"],
    }
    if visibility_timeout is not None:
        params["VisibilityTimeout"] = visibility_timeout
    try:
        response = client.receive_message(**params)
    except Exception as exc:  # translated for the supervisor
        raise SourceUnavailable(f"ReceiveMessage on {queue_url} failed: "
                                f"{error_code(exc)}: {exc}") from exc
    return list(response.get("Messages") or [])


def chunks(handles: Sequence[str]) -> list[list[str]]:
    return [list(handles[i:i + MAX_ENTRIES_PER_CALL])
            for i in range(0, len(handles), MAX_ENTRIES_PER_CALL)]


def delete(client: Any, queue_url: str, handles: Sequence[str],
           pool: ThreadPoolExecutor | None = None) -> int:
    """DeleteMessageBatch in chunks of 10 (in parallel when a pool is given); failed entries
    are retried when the failure is not the caller's fault. Returns how many were deleted."""
    return _run_chunks(client, queue_url, handles, pool, visibility=None)


def change_visibility(client: Any, queue_url: str, handles: Sequence[str], seconds: float,
                      pool: ThreadPoolExecutor | None = None) -> int:
    """ChangeMessageVisibilityBatch to `seconds` (0 = visible now), chunks of 10."""
    timeout = max(0, min(MAX_VISIBILITY_SECONDS, int(round(seconds))))
    return _run_chunks(client, queue_url, handles, pool, visibility=timeout)


def _run_chunks(client: Any, queue_url: str, handles: Sequence[str],
                pool: ThreadPoolExecutor | None, visibility: int | None) -> int:
    parts = chunks(handles)
    if pool is None or len(parts) < 2:
        return sum(_settle_chunk(client, queue_url, part, visibility) for part in parts)
    futures = [pool.submit(_settle_chunk, client, queue_url, part, visibility) for part in parts]
    return sum(f.result() for f in futures)


def _settle_chunk(client: Any, queue_url: str, handles: list[str], visibility: int | None) -> int:
    """One batch call with up to `ENTRY_ATTEMPTS` tries for retriable failed entries."""
    pending = {str(i): h for i, h in enumerate(handles)}
    done = 0
    for _ in range(ENTRY_ATTEMPTS):
        try:
            response = batch_call(client, queue_url, pending, visibility)
        except Exception as exc:  # logged below, never raised: see module docstring
            log.warning("%s on %s failed for %d messages: %s", _op(visibility), queue_url,
                        len(pending), error_code(exc))
            if not is_transient(exc):
                return done
            continue
        done += len(response.get("Successful") or [])
        retry = {}
        for failed in response.get("Failed") or []:
            if not failed.get("SenderFault"):
                retry[failed["Id"]] = pending[failed["Id"]]
            else:
                log.warning("%s on %s: entry rejected: %s", _op(visibility), queue_url,
                            failed.get("Code"))
        pending = retry
        if not pending:
            return done
    log.warning("%s on %s gave up on %d messages; they will be delivered again",
                _op(visibility), queue_url, len(pending))
    return done


def batch_call(client: Any, queue_url: str, pending: dict[str, str],
               visibility: int | None) -> Any:
    """One DeleteMessageBatch (`visibility` None) or ChangeMessageVisibilityBatch of the
    entries `pending` (entry id -> receipt handle); the raw answer, errors raised."""
    entries: list[dict[str, Any]] = [{"Id": i, "ReceiptHandle": h} for i, h in pending.items()]
    if visibility is None:
        return client.delete_message_batch(QueueUrl=queue_url, Entries=entries)
    for entry in entries:
        entry["VisibilityTimeout"] = visibility
    return client.change_message_visibility_batch(QueueUrl=queue_url, Entries=entries)


def _op(visibility: int | None) -> str:
    return "DeleteMessageBatch" if visibility is None else "ChangeMessageVisibilityBatch"
