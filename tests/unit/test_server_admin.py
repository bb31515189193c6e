"""The HTTP server's admin API: GET /mappings, /mappings/NAME, POST enable/disable, and the
bearer-token rule for mutating endpoints (esm.ops.admin)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from esm.ops.admin import check_auth, is_loopback
from esm.ops.server import AdminServer


class FakeDaemon:
    """What the server asks the daemon, with the requests it received."""

    def __init__(self, token: str | None = None) -> None:
        self.registry = CollectorRegistry()
        self.token = token
        self.requests: list[tuple[str, bool]] = []
        self.states = {"orders": "Enabled"}

    def mapping_snapshots(self) -> list[dict[str, Any]]:
        return [{"name": n, "state": s} for n, s in self.states.items()]

    def healthy(self) -> tuple[bool, str]:
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        return True, "ok"

    def auth_token(self) -> str | None:
        return self.token

    def request_enabled(self, name: str, enabled: bool) -> dict[str, Any]:
        if name not in self.states:
            raise KeyError(name)
        self.requests.append((name, enabled))
        self.states[name] = "Enabling" if enabled else "Disabling"
        return {"name": name, "state": self.states[name]}


@pytest.fixture
def serve():
    servers: list[AdminServer] = []

    def start(daemon: FakeDaemon) -> str:
        server = AdminServer("127.0.0.1:0", daemon)
        server.start()
        servers.append(server)
        host, port = server.address
        return f"http://{host}:{port}"

    yield start
    for server in servers:
        server.close()


def call(url: str, method: str = "GET", token: str | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_get_mappings_lists_every_mapping_and_one_by_name(serve):
    base = serve(FakeDaemon())
    assert call(base + "/mappings") == (200, [{"name": "orders", "state": "Enabled"}])
    assert call(base + "/mappings/orders") == (200, {"name": "orders", "state": "Enabled"})
    assert call(base + "/mappings/nope")[0] == 404


def test_post_disable_on_loopback_without_token_is_accepted_with_202(serve):
    # Given a loopback server with no token configured
    daemon = FakeDaemon()
    base = serve(daemon)
    # When a client disables then enables the mapping
    code, body = call(base + "/mappings/orders/disable", "POST")
    code2, _ = call(base + "/mappings/orders/enable", "POST")
    # Then both are accepted and reach the daemon
    assert (code, body["state"], code2) == (202, "Disabling", 202)
    assert daemon.requests == [("orders", False), ("orders", True)]


def test_post_with_a_token_configured_needs_the_right_bearer_token(serve):
    daemon = FakeDaemon(token="s3cret-token")
    base = serve(daemon)
    assert call(base + "/mappings/orders/disable", "POST")[0] == 401
    assert call(base + "/mappings/orders/disable", "POST", token="wrong")[0] == 401
    assert call(base + "/mappings/orders/disable", "POST", token="s3cret-token")[0] == 202
    assert daemon.requests == [("orders", False)]


def test_post_to_unknown_mapping_or_action_is_404(serve):
    daemon = FakeDaemon()
    base = serve(daemon)
    assert call(base + "/mappings/nope/disable", "POST")[0] == 404
    assert call(base + "/mappings/orders/delete", "POST")[0] == 404
    assert daemon.requests == []


def test_get_never_mutates(serve):
    daemon = FakeDaemon()
    base = serve(daemon)
    assert call(base + "/mappings/orders/disable")[0] == 404
    assert daemon.requests == []


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.3.2.1", True), ("::1", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("10.1.2.3", False), ("esm.example", False)])
def test_loopback_detection(host, loopback):
    assert is_loopback(host) is loopback


def test_beyond_loopback_without_a_token_mutations_are_refused():
    reason = check_auth(None, None, loopback=False)
    assert reason is not None and "auth_token" in reason
    assert check_auth(None, None, loopback=True) is None


def test_token_check_wants_the_bearer_scheme_and_the_exact_token():
    assert check_auth("Bearer abc", "abc", loopback=False) is None
    assert check_auth("bearer abc", "abc", loopback=False) is None
    assert check_auth("Basic abc", "abc", loopback=False) is not None
    assert check_auth("Bearer abcd", "abc", loopback=True) is not None
    assert check_auth(None, "abc", loopback=True) is not None
