"""systemd integration without a dependency: sd_notify over `NOTIFY_SOCKET` and the watchdog.

`Type=notify` units (deploy/systemd/esm.service) learn that esm is up from `READY=1`, that it
is reloading from `RELOADING=1` (then `READY=1` again), and that it is draining from
`STOPPING=1`. With `WatchdogSec=`, systemd sets `WATCHDOG_USEC`; esm sends `WATCHDOG=1` every
half of that interval, but only while the daemon reports itself healthy (every enabled
mapping's reader thread alive), so a wedged daemon is restarted by systemd.

The environment is read once, by the CLI, through `SystemdNotifier.from_env` (STYLE rule 4).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)


class SystemdNotifier:
    """Sends sd_notify datagrams to one socket path; a notifier without a path does nothing.

    `socket_path` may start with `@` for an abstract-namespace socket (as systemd allows).
    Send failures are logged and never raised: losing a status message must not stop esm.
    """

    def __init__(self, socket_path: str | None, watchdog_usec: int | None = None) -> None:
        self.socket_path = socket_path or None
        self.watchdog_usec = watchdog_usec if watchdog_usec and watchdog_usec > 0 else None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SystemdNotifier:
        """From NOTIFY_SOCKET and WATCHDOG_USEC (ignored when WATCHDOG_PID names another
        process, as sd_watchdog_enabled does)."""
        usec_text = env.get("WATCHDOG_USEC", "")
        pid_text = env.get("WATCHDOG_PID", "")
        usec = int(usec_text) if usec_text.isdigit() else None
        if pid_text.isdigit() and int(pid_text) != os.getpid():
            usec = None
        return cls(env.get("NOTIFY_SOCKET"), usec)

    @property
    def enabled(self) -> bool:
        return self.socket_path is not None

    @property
    def watchdog_interval_seconds(self) -> float | None:
        """Half the watchdog timeout (systemd's advice), or None without a watchdog."""
        return None if self.watchdog_usec is None else self.watchdog_usec / 2_000_000

    def notify(self, *lines: str) -> bool:
        """Send `KEY=value` lines as one datagram; True if it was sent."""
        if self.socket_path is None:
            return False
        address = self.socket_path
        if address.startswith("@"):
            address = "\0" + address[1:]
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(address)
                sock.sendall("\n".join(lines).encode())
        except OSError as exc:
            log.warning("systemd notify to %s failed: %s", self.socket_path, exc)
            return False
        return True

    def ready(self, status: str = "running") -> bool:
        return self.notify("READY=1", f"STATUS={status}")

    def reloading(self) -> bool:
        return self.notify("RELOADING=1", "STATUS=reloading configuration")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1", "STATUS=draining")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")


class WatchdogPinger(threading.Thread):
    """Pings the watchdog every `interval_seconds` while `healthy()` is true, until `stop`.

    An unhealthy daemon simply stops pinging: systemd then kills and restarts it, which is
    the point of the watchdog (a dead reader thread is not fixed by pinging on)."""

    def __init__(self, notifier: SystemdNotifier, healthy: Callable[[], bool],
                 stop: threading.Event, interval_seconds: float) -> None:
        super().__init__(name="esm-watchdog", daemon=True)
        self.notifier = notifier
        self.healthy = healthy
        self.stop = stop
        self.interval_seconds = interval_seconds
        self.skipped = 0

    def run(self) -> None:
        while not self.stop.is_set():
            if self.healthy():
                self.notifier.watchdog()
            else:
                self.skipped += 1
                log.warning("not pinging the systemd watchdog: daemon unhealthy")
            self.stop.wait(self.interval_seconds)
