"""The end-to-end journaling handler for `aws:mq` events (see tests.integration.handlers).

An MQ mapping has no partial batch responses (ESM-SPEC §2.6): when any message of the batch
should fail, the handler raises and the whole batch is retried. The event carries no
delivery count, only `redelivered`, so "delivery" is 1 or 2 here: a chosen message fails on
its first delivery only (ESM_E2E_FAIL_PER_MILLE), a poison one on every delivery.
"""

from __future__ import annotations

import base64
import json
import os
import time
from typing import Any

from tests.integration.handlers import _append, should_fail


class BatchFailed(Exception):
    """Raised to fail the whole batch, as an MQ function does."""


def record(event: dict[str, Any], context: Any) -> None:
    journal = os.environ["ESM_E2E_JOURNAL"]
    messages = event["messages"]
    _append(journal, [{"kind": "start", "pid": os.getpid(), "records": len(messages),
                       "concurrent": 0, "t": time.time()}])
    time.sleep(float(os.environ.get("ESM_E2E_SLEEP_SECONDS", "0")))
    lines = []
    for message in messages:
        body = json.loads(base64.b64decode(message["data"]))
        delivery = 2 if message["redelivered"] else 1
        lines.append({"kind": "fail" if should_fail(body, delivery) else "ok",
                      "pid": os.getpid(), "id": body.get("id"), "group": body.get("group"),
                      "seq": body.get("seq"), "delivery": delivery,
                      "messageId": message["messageID"], "t": time.time()})
    if any(line["kind"] == "fail" for line in lines):
        _append(journal, [{**line, "kind": "fail"} for line in lines])
        raise BatchFailed(f"{sum(line['kind'] == 'fail' for line in lines)} message(s) failed")
    _append(journal, lines)
