"""The daemon: builds every enabled mapping, runs their readers, serves the admin HTTP
endpoints, reloads its configuration, and shuts down cleanly.

SIGTERM/SIGINT: stop polling, let in-flight invocations finish, settle and commit, exit 0
within `shutdown_timeout_seconds` (DESIGN §9). SIGHUP: reload (esm.runtime.reload), restarting only
the mappings whose settings changed.

Each mapping runs under its own stop event (esm.runtime.mapping_runtime builds, launches and halts
one mapping), set when the daemon stops or the mapping is disabled, updated or removed; the
daemon's `stop` event stops everything. A disabled mapping drains like a daemon shutdown
(in-flight batches settle and commit), so enabling it again resumes from the committed
position (ESM-SPEC §1.1, checklist 64).

Mapping states (ESM-SPEC §1.1, checklist 65): Creating → Enabled; Disabling → Disabled;
Enabling → Enabled; Updating → Enabled; Deleting (then gone). `stateTransitionReason` is
"USER_INITIATED" for changes made through the configuration or the admin API.
"""

from __future__ import annotations

import faulthandler
import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from prometheus_client import CollectorRegistry

from esm.clock import SystemClock
from esm.config.types import Config, MappingConfig
from esm.errors import ConfigError
from esm.interfaces import Clock
from esm.ops.metrics import Metrics
from esm.ops.server import AdminServer
from esm.ops.status import StatusCollector
from esm.runtime.assembly import MappingParts
from esm.runtime.checkpoints import InProcessCheckpoints
from esm.runtime.gc_tuning import tune_for_throughput
from esm.runtime.mapping_runtime import RunningMappings
from esm.runtime.reload import ReloadPlan, load_new_config, plan_reload
from esm.runtime.systemd import SystemdNotifier, WatchdogPinger

log = logging.getLogger(__name__)

USER_INITIATED = "USER_INITIATED"


class Daemon:
    """Runs a Config. `start()` then `shutdown()`, or `run()` to do both with signals."""

    def __init__(self, config: Config, *, clock: Clock | None = None,
                 stop: threading.Event | None = None, registry: CollectorRegistry | None = None,
                 source_overrides: Mapping[str, Callable[[Any], Any]] | None = None,
                 reader_options: dict[str, float] | None = None,
                 notifier: SystemdNotifier | None = None,
                 config_loader: Callable[[], Config] | None = None) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.stop = stop or threading.Event()
        self.metrics = Metrics(registry)
        # Positions that outlive a source instance (restarts, disable/enable, reloads) for
        # sources without broker-side offsets (the memory source).
        self.checkpoints = InProcessCheckpoints()
        self.registry = self.metrics.registry
        self.running = RunningMappings(
            clock=self.clock, metrics=self.metrics, checkpoints=self.checkpoints,
            daemon_stop=self.stop, source_overrides=source_overrides or {},
            reader_options=reader_options)
        # The same dicts as `running`'s: the admin server and tests read them here.
        self.statuses = self.running.statuses
        self.parts = self.running.parts
        self.registry.register(StatusCollector(self.mapping_snapshots))
        self.server: AdminServer | None = None
        self.notifier = notifier or SystemdNotifier(None)
        self._config_loader = config_loader
        self._lock = threading.RLock()  # mapping start/stop: reload, admin API, shutdown
        self._reload_requested = threading.Event()
        # Set once start() launched every enabled mapping. The admin server answers before
        # that, and /readyz must not report ready while no mapping runs yet.
        self._launched = threading.Event()

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Build and start every mapping and the HTTP server; raises on bad connectors."""
        with self._lock:
            built = {m.name: self._build(m) for m in self.config.mappings if m.enabled}
            for mapping in self.config.mappings:
                self.running.status(mapping).update(
                    state="Creating" if mapping.enabled else "Disabled")
        if self.config.server.enabled:
            self.server = AdminServer(self.config.server.listen, self)
            self.server.start()
        tune_for_throughput()  # everything loaded at start is frozen out of GC passes
        with self._lock:
            for parts, stop in built.values():
                self.running.launch(parts, stop)
        self._launched.set()
        threading.Thread(target=self._relay_stop, name="esm-stop-relay", daemon=True).start()
        self.notifier.ready(f"running {len(self.parts)} mapping(s)")
        self._start_watchdog()  # after READY: systemd expects pings only from a started unit
        log.info("esm started with %d mapping(s): %s", len(self.parts), ", ".join(self.parts))

    def request_stop(self) -> None:
        self.stop.set()

    def request_reload(self) -> None:
        """Ask `run()`'s loop to reload (safe from a signal handler)."""
        self._reload_requested.set()

    def shutdown(self) -> bool:
        """Stop everything; True if every mapping drained within the budget."""
        self.notifier.stopping()
        self.stop.set()
        with self._lock:
            self.running.signal_stop()
            deadline = time.monotonic() + self.config.shutdown_timeout_seconds + 5
            clean = True
            for name in list(self.parts):
                clean = self.running.halt(name, max(0.0, deadline - time.monotonic())) and clean
        if self.server is not None:
            self.server.close()
        log.info("esm stopped%s", "" if clean else " (some mappings did not drain in time)")
        return clean

    def run(self) -> int:
        """Start, serve signals (TERM/INT stop, HUP reloads), shut down. 0 on a clean stop."""
        def on_stop(signum: int, _frame: object) -> None:
            log.info("received %s: draining", signal.Signals(signum).name)
            self.stop.set()

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, lambda _s, _f: self.request_reload())
        # `kill -USR1 <pid>` prints every thread's stack to stderr: what a daemon that does
        # not stop, or stops reading, is waiting on (works while Python code is blocked).
        faulthandler.register(signal.SIGUSR1, all_threads=True)
        self.start()
        while not self.stop.wait(0.2):
            if self._reload_requested.is_set():
                self._reload_requested.clear()
                self.reload()
        return 0 if self.shutdown() else 1

    def run_until_idle(self, timeout_seconds: float, settle_seconds: float = 0.3) -> bool:
        """Run until every mapping has read everything and settled it (the demo and tests).
        True if that happened within `timeout_seconds`."""
        deadline = time.monotonic() + timeout_seconds
        idle_since: float | None = None
        while time.monotonic() < deadline:
            if self.running.all_idle():
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since >= settle_seconds:
                    return True
            else:
                idle_since = None
            time.sleep(0.05)
        return False

    # -- reload ---------------------------------------------------------------------------

    def reload(self, new: Config | None = None) -> ReloadPlan | None:
        """Apply `new` (or what the config loader returns now). A configuration that does not
        load, or a mapping whose connectors refuse to build, leaves the running one in place
        and logs why. Returns the plan applied, or None when nothing was applied."""
        self.notifier.reloading()
        try:
            if new is None and self._config_loader is not None:
                new = load_new_config(self._config_loader)
            if new is None:
                return None
            return self._apply(new)
        finally:
            self.notifier.ready(f"running {len(self.parts)} mapping(s)")

    def _apply(self, new: Config) -> ReloadPlan:
        plan = plan_reload(self.config, new)
        with self._lock:
            old = {m.name: m for m in self.config.mappings}
            for name in plan.removed:
                self._remove(name)
            failed = {m.name for m in plan.changed if not self._replace(m, fresh=False)}
            failed |= {m.name for m in plan.added if not self._replace(m, fresh=True)}
            for name in failed - old.keys():
                self.statuses.pop(name, None)
            kept = [old[m.name] if m.name in failed else m for m in new.mappings
                    if m.name in old or m.name not in failed]
            self.config = replace(new, mappings=tuple(kept))
        log.info("configuration reloaded: %s", plan.summary())
        for note in plan.notes:
            log.warning("reload: %s", note)
        return plan

    def _replace(self, mapping: MappingConfig, *, fresh: bool) -> bool:
        """(Re)start `mapping` with new settings; False (old one kept) if it cannot build."""
        status = self.running.status(mapping)
        try:
            built = self._build(mapping) if mapping.enabled else None
        except (ConfigError, ImportError, OSError, ValueError) as exc:
            log.error("reload: mapping %s not changed, it failed to build: %s", mapping.name, exc)
            status.update(last_error=f"reload failed: {exc}"[:500])
            return False
        status.update(state="Creating" if fresh else "Updating",
                      state_transition_reason=USER_INITIATED,
                      source_type=mapping.source.type, target_type=mapping.target.type)
        self._halt(mapping.name)
        if built is None:
            status.update(state="Disabled")
        else:
            status.update(state="Creating" if fresh else "Updating")
            self.running.launch(*built)
        return True

    def _remove(self, name: str) -> None:
        status = self.statuses[name]
        status.update(state="Deleting", state_transition_reason=USER_INITIATED)
        self._halt(name)
        del self.statuses[name]

    # -- enable / disable ---------------------------------------------------------------

    def set_enabled(self, name: str, enabled: bool) -> dict[str, Any]:
        """Enable or disable a mapping now and wait for it; KeyError for an unknown name.
        Lasts until the next reload that changes this mapping's settings."""
        with self._lock:
            mapping = self._mapping_config(name)
            status = self.statuses[name]
            if enabled and name not in self.parts:
                status.update(state="Enabling", state_transition_reason=USER_INITIATED)
                self.running.launch(*self._build(mapping))
            elif not enabled and name in self.parts:
                status.update(state="Disabling", state_transition_reason=USER_INITIATED)
                self._halt(name)
                status.update(state="Disabled", ready=False)
            return status.snapshot()

    def request_enabled(self, name: str, enabled: bool) -> dict[str, Any]:
        """`set_enabled` in the background (the admin API's POST returns at once, like AWS's
        202): shows Enabling/Disabling until done. KeyError for an unknown name."""
        with self._lock:
            self._mapping_config(name)
            status = self.statuses[name]
            if enabled != (name in self.parts):
                status.update(state="Enabling" if enabled else "Disabling",
                              state_transition_reason=USER_INITIATED)
        threading.Thread(target=self._set_enabled_logged, args=(name, enabled),
                         name=f"esm-admin-{name}", daemon=True).start()
        return status.snapshot()

    def _set_enabled_logged(self, name: str, enabled: bool) -> None:
        try:
            self.set_enabled(name, enabled)
        except (ConfigError, ImportError, OSError, ValueError, KeyError) as exc:
            log.error("mapping %s: could not be %s: %s", name,
                      "enabled" if enabled else "disabled", exc)
            status = self.statuses.get(name)
            if status is not None:
                status.update(state="Disabled" if enabled else status.state,
                              last_error=f"{type(exc).__name__}: {exc}"[:500])

    def _mapping_config(self, name: str) -> MappingConfig:
        for mapping in self.config.mappings:
            if mapping.name == name:
                return mapping
        raise KeyError(name)

    # -- one mapping's parts (esm.runtime.mapping_runtime) --------------------------------------

    def _build(self, mapping: MappingConfig) -> tuple[MappingParts, threading.Event]:
        return self.running.build(mapping, self.config.shutdown_timeout_seconds)

    def _halt(self, name: str) -> bool:
        # Drain budget plus a margin for closing the connectors.
        return self.running.halt(name, self.config.shutdown_timeout_seconds + 5)

    def _relay_stop(self) -> None:
        # Whoever sets the daemon's stop event (signal, test, embedding code) stops every
        # mapping, as when all readers shared that one event.
        self.stop.wait()
        with self._lock:
            self.running.signal_stop()

    def _start_watchdog(self) -> None:
        interval = self.notifier.watchdog_interval_seconds
        if self.notifier.enabled and interval:
            WatchdogPinger(self.notifier, lambda: self.healthy()[0], self.stop, interval).start()

    # -- what the HTTP server asks ----------------------------------------------------------

    def mapping_snapshots(self) -> list[dict[str, Any]]:
        return [status.snapshot() for status in list(self.statuses.values())]

    def auth_token(self) -> str | None:
        return self.config.server.auth_token

    def healthy(self) -> tuple[bool, str]:
        dead = self.running.dead()
        return (not dead, f"reader thread not running: {', '.join(dead)}" if dead else "ok")

    def ready(self) -> tuple[bool, str]:
        if not self._launched.is_set():
            return False, "starting"
        waiting = self.running.not_ready()
        return (not waiting, f"not ready: {', '.join(waiting)}" if waiting else "ok")
