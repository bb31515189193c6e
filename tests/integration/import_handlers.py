"""Kinesis and DynamoDB handlers for the `esm import` round trips, journalling like
`handlers.record`.

Each Kinesis record's `kinesis.data` is base64 JSON `{"id": ..., "kind": ...}`; every record is
journalled as `{"kind": "ok", "id": ...}` and a batch holding a `"poison": true` record
raises (a function error), so bisection and the on-failure destination come into play.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from tests.integration.handlers import _append


def kinesis(event: dict[str, Any], context: Any) -> None:
    bodies = [json.loads(base64.b64decode(r["kinesis"]["data"])) for r in event["Records"]]
    if any(body.get("poison") for body in bodies):
        raise ValueError(f"poison record in a batch of {len(bodies)}")
    _append(os.environ["ESM_E2E_JOURNAL"], [{"kind": "ok", "id": b["id"]} for b in bodies])


def dynamodb(event: dict[str, Any], context: Any) -> None:
    """Journal each changed item's `id` key."""
    ids = [r["dynamodb"]["Keys"]["id"]["S"] for r in event["Records"]]
    _append(os.environ["ESM_E2E_JOURNAL"], [{"kind": "ok", "id": i} for i in ids])
