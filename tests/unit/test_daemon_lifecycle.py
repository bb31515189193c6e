"""Daemon lifecycle: mapping states, enable/disable at runtime without losing position,
and configuration reload that restarts only the changed mappings (DESIGN §9, ESM-SPEC §1.1)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from connectors.memory.source import MemoryBroker, MemorySettings, MemorySource
from esm.clock import SystemClock
from esm.config.loading import load_config
from esm.config.types import Config
from esm.runtime.daemon import Daemon

_seen: list[tuple[str, int]] = []
_seen_lock = threading.Lock()


def handle(event: dict[str, Any], context: Any) -> None:
    """The mappings' target: records which mapping saw which record id."""
    with _seen_lock:
        for record in event["Records"]:
            _seen.append((record["eventSourceARN"], json.loads(record["body"])["id"]))


def mapping_yaml(name: str, batch_size: int = 5, enabled: bool = True) -> str:
    return f"""
  - name: {name}
    enabled: {str(enabled).lower()}
    source: {{type: memory}}
    batch_size: {batch_size}
    target: {{type: python, handler: "tests.unit.test_daemon_lifecycle:handle"}}
"""


def write_config(tmp_path: Path, *mappings: str, name: str = "esm.yaml") -> Path:
    path = tmp_path / name
    path.write_text("mappings:" + "".join(mappings) + "server: {enabled: false}\n"
                    "shutdown_timeout_seconds: 5\n")
    return path


class Harness:
    """A daemon over memory brokers that outlive its readers (like a real broker)."""

    def __init__(self, config: Config, loader: Callable[[], Config] | None = None) -> None:
        self.brokers: dict[str, MemoryBroker] = {}
        names = [m.name for m in config.mappings] + ["new", "b", "c"]
        overrides = {name: self._override(name) for name in names}
        self.daemon = Daemon(config, source_overrides=overrides, config_loader=loader,
                             reader_options={"lag_interval_seconds": 0.02,
                                             "idle_poll_seconds": 0.02})

    def _override(self, name: str) -> Callable[[Any], MemorySource]:
        broker = self.brokers.setdefault(name, MemoryBroker("stream", SystemClock()))
        return lambda context: MemorySource(MemorySettings(), context, broker=broker)

    def put(self, name: str, *ids: int) -> None:
        for n in ids:
            self.brokers[name].put({"id": n})


def ids_seen(name: str) -> list[int]:
    with _seen_lock:
        return sorted(n for arn, n in _seen if arn == f"memory://{name}")


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


@pytest.fixture(autouse=True)
def _clear_seen() -> None:
    with _seen_lock:
        _seen.clear()


@pytest.fixture
def harness_factory():
    made: list[Harness] = []

    def make(config: Config, loader: Callable[[], Config] | None = None) -> Harness:
        harness = Harness(config, loader)
        made.append(harness)
        return harness

    yield make
    for harness in made:
        harness.daemon.shutdown()


def test_enabled_mapping_moves_from_creating_to_enabled_and_disabled_one_stays_disabled(
        tmp_path, harness_factory):
    # Given one enabled and one disabled mapping
    config = load_config([str(write_config(tmp_path, mapping_yaml("a"),
                                           mapping_yaml("b", enabled=False)))], {})
    harness = harness_factory(config)
    # When the daemon starts
    harness.daemon.start()
    # Then a becomes Enabled, b is Disabled, both by user action
    wait_for(lambda: harness.daemon.statuses["a"].state == "Enabled")
    snapshot = {s["name"]: s for s in harness.daemon.mapping_snapshots()}
    assert snapshot["b"]["state"] == "Disabled"
    assert snapshot["a"]["stateTransitionReason"] == "USER_INITIATED"
    assert "b" not in harness.daemon.parts


def test_disable_then_enable_resumes_from_the_committed_position_without_replays(
        tmp_path, harness_factory):
    # Given a running mapping that processed records 0-9
    config = load_config([str(write_config(tmp_path, mapping_yaml("a")))], {})
    harness = harness_factory(config)
    harness.put("a", *range(10))
    harness.daemon.start()
    assert harness.daemon.run_until_idle(10)
    # When it is disabled, more records arrive, and it is enabled again
    disabled = harness.daemon.set_enabled("a", False)
    harness.put("a", *range(10, 15))
    time.sleep(0.2)
    seen_while_disabled = ids_seen("a")
    enabled = harness.daemon.set_enabled("a", True)
    assert harness.daemon.run_until_idle(10)
    # Then nothing was read while disabled, and every record was processed exactly once
    assert disabled["state"] == "Disabled"
    assert enabled["state"] in ("Enabling", "Enabled")
    assert seen_while_disabled == list(range(10))
    assert ids_seen("a") == list(range(15))
    assert harness.daemon.statuses["a"].state == "Enabled"


def test_request_enabled_returns_at_once_with_a_transition_state(tmp_path, harness_factory):
    # Given a running mapping
    config = load_config([str(write_config(tmp_path, mapping_yaml("a")))], {})
    harness = harness_factory(config)
    harness.daemon.start()
    wait_for(lambda: harness.daemon.statuses["a"].state == "Enabled")
    # When a disable is requested the way the admin API does it
    snapshot = harness.daemon.request_enabled("a", False)
    # Then the answer shows Disabling (or already Disabled) and it ends Disabled
    assert snapshot["state"] in ("Disabling", "Disabled")
    wait_for(lambda: harness.daemon.statuses["a"].state == "Disabled")
    assert harness.daemon.healthy() == (True, "ok")


def test_enabling_an_unknown_mapping_raises_key_error(tmp_path, harness_factory):
    config = load_config([str(write_config(tmp_path, mapping_yaml("a")))], {})
    harness = harness_factory(config)
    harness.daemon.start()
    with pytest.raises(KeyError):
        harness.daemon.set_enabled("nope", True)
    with pytest.raises(KeyError):
        harness.daemon.request_enabled("nope", False)


def test_reload_restarts_only_the_changed_mapping(tmp_path, harness_factory):
    # Given mappings a and b running
    path = write_config(tmp_path, mapping_yaml("a"), mapping_yaml("b"))
    config = load_config([str(path)], {})
    harness = harness_factory(config, lambda: load_config([str(path)], {}))
    harness.daemon.start()
    wait_for(lambda: all(s.state == "Enabled" for s in harness.daemon.statuses.values()))
    runner_a, runner_b = harness.daemon.parts["a"].runner, harness.daemon.parts["b"].runner
    # When b's batch size changes in the file and the daemon reloads
    write_config(tmp_path, mapping_yaml("a"), mapping_yaml("b", batch_size=7))
    plan = harness.daemon.reload()
    # Then only b was restarted, with its new settings, and ends Enabled
    assert plan is not None
    assert [m.name for m in plan.changed] == ["b"] and plan.unchanged == ("a",)
    assert harness.daemon.parts["a"].runner is runner_a
    assert harness.daemon.parts["b"].runner is not runner_b
    assert not runner_b.is_alive()
    assert harness.daemon.parts["b"].mapping.batch_size == 7
    wait_for(lambda: harness.daemon.statuses["b"].state == "Enabled")


def test_reload_adds_and_removes_mappings_and_processes_with_the_new_one(
        tmp_path, harness_factory):
    # Given mapping a running
    path = write_config(tmp_path, mapping_yaml("a"))
    harness = harness_factory(load_config([str(path)], {}), lambda: load_config([str(path)], {}))
    harness.daemon.start()
    # When the file replaces a by c and the daemon reloads
    write_config(tmp_path, mapping_yaml("c"))
    harness.put("c", 1, 2, 3)
    plan = harness.daemon.reload()
    # Then a is gone, c runs and processes its records
    assert plan is not None and plan.removed == ("a",) and [m.name for m in plan.added] == ["c"]
    assert set(harness.daemon.statuses) == {"c"}
    assert harness.daemon.run_until_idle(10)
    assert ids_seen("c") == [1, 2, 3]


def test_bad_configuration_on_reload_keeps_the_running_one_and_logs_why(
        tmp_path, harness_factory, caplog):
    # Given a running mapping
    path = write_config(tmp_path, mapping_yaml("a"))
    config = load_config([str(path)], {})
    harness = harness_factory(config, lambda: load_config([str(path)], {}))
    harness.daemon.start()
    runner = harness.daemon.parts["a"].runner
    # When the file becomes invalid and the daemon reloads
    path.write_text("mappings:\n  - name: a\n    batch_size: 0\n")
    with caplog.at_level(logging.ERROR):
        plan = harness.daemon.reload()
    # Then nothing changed and the problems were logged
    assert plan is None
    assert harness.daemon.config is config
    assert harness.daemon.parts["a"].runner is runner and runner.is_alive()
    assert "reload refused" in caplog.text and "batch_size" in caplog.text


def test_reload_keeps_the_old_mapping_when_its_new_settings_fail_to_build(
        tmp_path, harness_factory):
    # Given a running mapping
    path = write_config(tmp_path, mapping_yaml("a"))
    config = load_config([str(path)], {})
    harness = harness_factory(config)
    harness.daemon.start()
    runner = harness.daemon.parts["a"].runner
    # When the new configuration names a handler that cannot be imported
    broken = (tmp_path / "broken.yaml")
    broken.write_text(write_config(tmp_path, mapping_yaml("a", batch_size=3)).read_text()
                      .replace("test_daemon_lifecycle:handle", "test_daemon_lifecycle:absent"))
    new = load_config([str(broken)], {})
    harness.daemon.reload(new)
    # Then the old mapping keeps running with its old settings and the error is shown
    assert harness.daemon.parts["a"].runner is runner and runner.is_alive()
    assert harness.daemon._mapping_config("a").batch_size == 5
    assert "reload failed" in (harness.daemon.statuses["a"].last_error or "")


def test_setting_the_daemon_stop_event_stops_every_mapping(tmp_path):
    # Given a started daemon
    config = load_config([str(write_config(tmp_path, mapping_yaml("a")))], {})
    harness = Harness(config)
    harness.daemon.start()
    runner = harness.daemon.parts["a"].runner
    # When someone sets the daemon's stop event
    harness.daemon.stop.set()
    # Then the mapping's runner stops too
    runner.join(10)
    assert not runner.is_alive()
    assert harness.daemon.shutdown() is True



def test_the_daemon_is_ready_only_once_every_enabled_mapping_runs(tmp_path, harness_factory):
    # Given one enabled and one disabled mapping, and a daemon not started yet (its admin
    # server answers /readyz before start() has launched the mappings)
    config = load_config([str(write_config(tmp_path, mapping_yaml("a"),
                                           mapping_yaml("b", enabled=False)))], {})
    harness = harness_factory(config)
    assert harness.daemon.ready() == (False, "starting")
    # When it starts / Then it becomes ready; the disabled mapping does not hold it back
    harness.daemon.start()
    wait_for(lambda: harness.daemon.ready() == (True, "ok"))


def test_a_mapping_being_enabled_keeps_the_daemon_not_ready_until_it_runs(
        tmp_path, harness_factory):
    # Given a ready daemon whose only mapping was disabled
    config = load_config([str(write_config(tmp_path, mapping_yaml("a")))], {})
    harness = harness_factory(config)
    harness.daemon.start()
    wait_for(lambda: harness.daemon.ready()[0])
    harness.daemon.set_enabled("a", False)
    assert harness.daemon.ready() == (True, "ok")
    # When it is enabled again: not ready while it is not launched or not reading yet
    harness.daemon.statuses["a"].update(state="Enabling")
    assert harness.daemon.ready() == (False, "not ready: a")
    harness.daemon.set_enabled("a", True)
    # Then ready once it runs
    wait_for(lambda: harness.daemon.ready() == (True, "ok"))
