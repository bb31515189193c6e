"""deploy/systemd/esm.service: Type=notify with a watchdog, SIGHUP reload, a stop timeout
above the drain budget, and the hardening the issue lists. Parsed, not installed (no
systemd in the test environment)."""

from __future__ import annotations

import configparser

from tests.integration.e2e_support import REPO_ROOT

UNIT = REPO_ROOT / "deploy" / "systemd" / "esm.service"
DEFAULT_DRAIN_SECONDS = 30


def service() -> dict[str, list[str]]:
    """[Service] keys → every value given (systemd allows repeating a key)."""
    values: dict[str, list[str]] = {}
    section = None
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]":
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


def test_unit_parses_as_ini_with_the_three_sections():
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNIT)
    assert {"Unit", "Service", "Install"} <= set(parser.sections())


def test_notify_type_with_watchdog_and_reload_by_sighup():
    s = service()
    assert s["Type"] == ["notify"] and s["NotifyAccess"] == ["main"]
    assert int(s["WatchdogSec"][0]) > 0
    assert s["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert s["ExecStart"][0].split()[1] == "run"


def test_stop_timeout_is_above_the_drain_budget():
    assert int(service()["TimeoutStopSec"][0]) > DEFAULT_DRAIN_SECONDS + 5


def test_hardening_options_are_on():
    s = service()
    for key, value in {"DynamicUser": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                       "PrivateTmp": "yes", "NoNewPrivileges": "yes",
                       "PrivateDevices": "yes", "CapabilityBoundingSet": ""}.items():
        assert s[key] == [value], key
    assert s["StateDirectory"] == ["esm"]  # the only writable place under ProtectSystem=strict
