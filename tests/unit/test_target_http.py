"""connectors.http.target without a server: settings validation and response parsing.
Behaviour against a real server is in tests/integration/test_http_target_real_server.py."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from connectors.http.target import (
    HttpSettings,
    HttpTarget,
    function_failed_from,
    returned_from,
    safe_url,
)
from esm.clock import FakeClock
from esm.errors import ConfigError
from esm.interfaces import ConnectorContext
from esm.records import FunctionFailed, Returned


@pytest.mark.parametrize(("settings", "problem"), [
    ({"url": "ftp://billing/invoke"}, "url: must be an http:// or https:// URL"),
    ({"url": "billing:8080/invoke"}, "url: must be an http:// or https:// URL"),
    ({"url": "http:///invoke"}, "url: must be an http:// or https:// URL with a host"),
    ({"url": "http://billing:99999/"}, "url: Port out of range"),
    ({"url": "http://b/", "headers": {"X-Token": "a\r\nInjected: 1"}},
     "headers.X-Token: value must be a string on one line"),
    ({"url": "http://b/", "headers": {"Bad Name": "v"}}, "headers: 'Bad Name' is not a valid"),
    ({"url": "http://b/", "ca_file": "no/such/ca.pem"}, "ca_file: 'no/such/ca.pem' is not a file"),
])
def test_bad_settings_are_config_errors_naming_the_key(settings: dict[str, object],
                                                       problem: str) -> None:
    # Given / When settings with one problem
    with pytest.raises(ConfigError) as err:
        HttpSettings(**settings)  # type: ignore[arg-type]
    # Then the error names the key and the problem
    assert problem in str(err.value)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    # Given settings with three problems
    with pytest.raises(ConfigError) as err:
        HttpSettings(url="ftp://x", headers={"A": "1\n"}, ca_file=str(tmp_path / "none.pem"))
    # Then all three are listed, on one line for the config loader's path prefix
    message = str(err.value)
    assert "\n" not in message
    assert all(key in message for key in ("url:", "headers.A:", "ca_file:"))


def test_header_values_never_appear_in_errors_or_repr() -> None:
    # Given a secret header value with a newline
    with pytest.raises(ConfigError) as err:
        HttpSettings(url="http://b/", headers={"Authorization": "Bearer t0ken\n"})
    # Then the error does not show it, and neither does a valid settings' repr
    assert "t0ken" not in str(err.value)
    assert "t0ken" not in repr(HttpSettings(url="http://b/",
                                            headers={"Authorization": "Bearer t0ken"}))


def test_secret_headers_are_marked_in_field_metadata() -> None:
    # Given the settings fields / Then headers are marked secret for config dumps and logs
    import dataclasses

    fields = {f.name: f for f in dataclasses.fields(HttpSettings)}
    assert fields["headers"].metadata["secret"] is True
    assert all(f.metadata.get("doc") for f in fields.values())


def test_valid_settings_and_existing_ca_file_are_accepted(tmp_path: Path) -> None:
    # Given a CA file that exists
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    # When settings are built / Then they keep the values and a target builds without I/O
    settings = HttpSettings(url="https://billing:8443/invoke", ca_file=str(ca), verify_tls=True)
    target = HttpTarget(settings, ConnectorContext("orders", threading.Event(), FakeClock()))
    assert settings.ca_file == str(ca)
    target.close()


@pytest.mark.parametrize(("url", "shown"), [
    ("http://user:pw@billing:8080/invoke?token=abc", "http://billing:8080/invoke"),
    ("https://billing/invoke", "https://billing/invoke"),
    ("http://[::1]:9000/x", "http://[::1]:9000/x"),
])
def test_safe_url_drops_credentials_and_query(url: str, shown: str) -> None:
    assert safe_url(url) == shown


@pytest.mark.parametrize(("body", "expected"), [
    (b"", Returned(payload=None)),
    (b"  \n", Returned(payload=None)),
    (b'""', Returned(payload="")),
    (b"null", Returned(payload=None)),
    (b'{"batchItemFailures": []}', Returned(payload={"batchItemFailures": []})),
    (b"ok", Returned(payload=None, raw=b"ok", valid_json=False)),
])
def test_response_bodies_become_returned(body: bytes, expected: Returned) -> None:
    assert returned_from(body) == expected


@pytest.mark.parametrize(("body", "expected"), [
    (b'{"errorType": "E", "errorMessage": "m", "stackTrace": ["a", "b"]}',
     FunctionFailed("E", "m", ("a", "b"))),
    (b'{"errorMessage": "Task timed out after 3.00 seconds"}',
     FunctionFailed("Unhandled", "Task timed out after 3.00 seconds")),
    (b'{"errorType": "E", "errorMessage": "m", "stackTrace": "not a list"}',
     FunctionFailed("E", "m")),
    (b"[1, 2]", FunctionFailed("Unhandled", "[1, 2]")),
    (b"crashed", FunctionFailed("Unhandled", "crashed")),
    (b"", FunctionFailed("Unhandled", "")),
])
def test_function_error_bodies_become_function_failed(body: bytes,
                                                      expected: FunctionFailed) -> None:
    assert function_failed_from("Unhandled", body) == expected
