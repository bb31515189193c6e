"""The admin API's mutating endpoints, served by esm.ops.server beside `/metrics`:

    POST /mappings/NAME/enable    → 202 and the mapping (state Enabling, then Enabled)
    POST /mappings/NAME/disable   → 202 and the mapping (state Disabling, then Disabled)

Like AWS's UpdateEventSourceMapping the change is applied asynchronously (ESM-SPEC §1.1);
disabling drains the mapping and keeps its position, enabling resumes from it (checklist 64).

Authorization: when `server.auth_token` is set, every mutating request needs
`Authorization: Bearer <token>` (compared in constant time). Without a token, mutating
requests are accepted only when the server listens on a loopback address; a server that
listens beyond loopback without a token refuses them, so exposing the port never exposes
control of the mappings.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import re
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

Response = tuple[int, str, bytes]

_ACTION = re.compile(r"^/mappings/(?P<name>[^/]+)/(?P<action>enable|disable)$")


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and `localhost`; False for 0.0.0.0, :: and any name."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_auth(authorization: str | None, token: str | None, loopback: bool) -> str | None:
    """None when the request may mutate, else the reason it may not."""
    if token:
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode(), str(token).encode()):
            return "missing or wrong bearer token"
        return None
    if loopback:
        return None
    return "the server listens beyond loopback: set server.auth_token to allow changes"


def handle_post(path: str, authorization: str | None, *, loopback: bool,
                token: str | None,
                request_enabled: Callable[[str, bool], dict[str, Any]]) -> Response:
    """Route one POST. 404 unknown endpoint or mapping, 401 unauthorized, 202 accepted."""
    match = _ACTION.match(path)
    if match is None:
        return json_response(404, {"error": f"no such endpoint: POST {path}"})
    refused = check_auth(authorization, token, loopback)
    if refused is not None:
        log.warning("admin: refused POST %s: %s", path, refused)
        return json_response(401, {"error": refused})
    name, enable = match["name"], match["action"] == "enable"
    try:
        snapshot = request_enabled(name, enable)
    except KeyError:
        return json_response(404, {"error": f"no mapping named {name!r}"})
    log.info("admin: %s mapping %s", "enabling" if enable else "disabling", name)
    return json_response(202, snapshot)


def json_response(code: int, value: Any) -> Response:
    return code, "application/json", json.dumps(value, indent=1).encode()
