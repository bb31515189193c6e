"""Configuration reload (SIGHUP, DESIGN §9): validate the new files first, then work out
which mappings to add, remove or restart, so that unchanged mappings keep running untouched.

A file that does not load keeps the old configuration running and the reason is logged
(every problem, one per line). Server settings other than `auth_token` are bound when the
server starts; a change to them is reported and takes effect at the next restart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

from esm.config.types import Config, MappingConfig
from esm.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    """What a reload changes; names in configuration order."""

    added: tuple[MappingConfig, ...]
    removed: tuple[str, ...]
    changed: tuple[MappingConfig, ...]
    unchanged: tuple[str, ...]
    notes: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def summary(self) -> str:
        parts = [f"{label}: {', '.join(names)}" for label, names in (
            ("added", [m.name for m in self.added]), ("removed", list(self.removed)),
            ("restarted", [m.name for m in self.changed]), ("unchanged", list(self.unchanged)),
        ) if names]
        return "; ".join(parts) or "no mappings"


def plan_reload(old: Config, new: Config) -> ReloadPlan:
    """Compare two configurations mapping by mapping (by name).

    A mapping counts as changed when any of its settings differ, including `enabled` and
    its connectors' settings; only the file it came from is ignored (moving a mapping to
    another file does not restart it)."""
    before = {m.name: m for m in old.mappings}
    after = {m.name: m for m in new.mappings}
    added = tuple(m for name, m in after.items() if name not in before)
    removed = tuple(name for name in before if name not in after)
    changed = tuple(m for name, m in after.items()
                    if name in before and not _same(before[name], m))
    unchanged = tuple(name for name, m in after.items()
                      if name in before and _same(before[name], m))
    return ReloadPlan(added, removed, changed, unchanged, _server_notes(old, new))


def _same(a: MappingConfig, b: MappingConfig) -> bool:
    return replace(a, source_file="") == replace(b, source_file="")


def _server_notes(old: Config, new: Config) -> tuple[str, ...]:
    notes = []
    if (old.server.listen, old.server.enabled) != (new.server.listen, new.server.enabled):
        notes.append("server.listen/server.enabled changed: takes effect after a restart")
    if old.logging != new.logging:
        notes.append("logging changed: takes effect after a restart")
    if old.shutdown_timeout_seconds != new.shutdown_timeout_seconds:
        notes.append("shutdown_timeout_seconds changed: applies to mappings started from now")
    return tuple(notes)


def load_new_config(loader: Callable[[], Config]) -> Config | None:
    """Run `loader`; on a bad configuration log every problem and return None, so the
    caller keeps the configuration it is running."""
    try:
        return loader()
    except ConfigError as exc:
        log.error("reload refused, keeping the running configuration: %d problem(s)",
                  len(exc.problems))
        for problem in exc.problems:
            log.error("  %s", problem)
        return None
    except OSError as exc:
        log.error("reload refused, keeping the running configuration: %s", exc)
        return None
