"""Helpers for the end-to-end tests: the daemon as a real subprocess (`python -m esm.cli run`).

- `write_config` writes a YAML config in the test's tmp_path, with the admin server on a
  free port.
- `DaemonProcess` starts `esm run` in its own process group (so kill -9 takes any child
  with it), waits for /readyz, reads /metrics and /mappings, and stops it with SIGTERM or
  SIGKILL. Its output goes to a log file whose tail is put in every failure message.
- `wait_until` polls a condition with a generous timeout and fails with a description of
  what is still missing, never a bare timeout; nothing here sleeps as an assertion.
- The handler the daemon runs is `tests.integration.handlers:record`; it journals every
  record to the file named by `ESM_E2E_JOURNAL`, read back with `read_journal`.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.handlers import read_journal
from tests.servers.common import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
HANDLER = "tests.integration.handlers:record"


def write_config(directory: Path, mappings: list[dict[str, Any]], *,
                 shutdown_timeout_seconds: float = 10, name: str = "esm.yaml") -> Path:
    """A config file with these mappings and the admin server on a free 127.0.0.1 port."""
    path = directory / name
    document = {"mappings": mappings, "server": {"listen": f"127.0.0.1:{free_port()}"},
                "logging": {"level": "INFO", "format": "text"},
                "shutdown_timeout_seconds": shutdown_timeout_seconds}
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def listen_port(config: Path) -> int:
    listen = yaml.safe_load(config.read_text())["server"]["listen"]
    return int(listen.rpartition(":")[2])


def python_target(timeout_seconds: float = 3) -> dict[str, Any]:
    return {"type": "python", "handler": HANDLER, "timeout_seconds": timeout_seconds}


def daemon_env(journal: Path, **knobs: str) -> dict[str, str]:
    """The environment for `esm run`: the repo importable, the journal and handler knobs."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    env["ESM_E2E_JOURNAL"] = str(journal)
    env.setdefault("AWS_ACCESS_KEY_ID", "test")
    env.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    env.update({f"ESM_E2E_{key.upper()}": value for key, value in knobs.items()})
    return env


def run_cli(*args: str, env: dict[str, str] | None = None,
            timeout_seconds: float = 60) -> subprocess.CompletedProcess[str]:
    """`python -m esm.cli ARGS` to completion (validate, run with a bad config, demo)."""
    return subprocess.run([sys.executable, "-m", "esm.cli", *args], cwd=REPO_ROOT,
                          env=env or daemon_env(Path(os.devnull)), capture_output=True,
                          text=True, timeout=timeout_seconds, check=False)


_PR_SET_PDEATHSIG = 1
try:  # resolved here, not in the forked child
    _prctl: Any = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux: a killed test run may leave daemons behind
    _prctl = None


def _die_with_the_test_process() -> None:
    """In the daemon's child process before exec: SIGKILL it when the thread that started
    it ends, so a test run killed with -9 leaves no daemon running (its own session keeps
    it out of the test's process group). Daemons are started from the test's main thread."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class DaemonProcess:
    """`esm run CONFIG` as a subprocess; use as a context manager so it never outlives a test."""

    def __init__(self, config: Path, env: dict[str, str], log_path: Path) -> None:
        self.config = config
        self.port = listen_port(config)
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> DaemonProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()

    def start(self) -> DaemonProcess:
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            log.write(f"---- esm run {self.config.name} ----\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "esm.cli", "run", str(self.config)], cwd=REPO_ROOT,
                env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=_die_with_the_test_process)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None, "daemon not started"
        return self.proc.pid

    def wait_ready(self, timeout_seconds: float = 60,
                   diagnose: Callable[[], str] = lambda: "") -> None:
        """Until /readyz answers 200; fails with the log (and what `diagnose` returns then)
        if the daemon exits or never is."""
        def ready() -> bool:
            self._assert_running("before it was ready")
            return self.get("/readyz")[0] == 200
        wait_until(ready, timeout_seconds,
                   lambda: f"/readyz never answered 200\n{diagnose()}\n{self.log_tail()}")

    def get(self, path: str) -> tuple[int, str]:
        """(HTTP status, body) of GET path on the admin server; (0, error) if unreachable."""
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except OSError as exc:
            return 0, str(exc)

    def mappings(self) -> list[dict[str, Any]]:
        status, body = self.get("/mappings")
        assert status == 200, f"/mappings answered {status}: {body}"
        return list(json.loads(body))

    def metrics(self) -> dict[str, float]:
        """Samples of /metrics as {"name{label=value,...}": value} (labels sorted)."""
        status, body = self.get("/metrics")
        assert status == 200, f"/metrics answered {status}: {body[:500]}"
        return parse_metrics(body)

    def terminate(self) -> None:
        os.kill(self.pid, signal.SIGTERM)

    def kill(self) -> None:
        """kill -9 the whole process group (no-op once it exited)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def wait_exit(self, timeout_seconds: float) -> int:
        assert self.proc is not None, "daemon not started"
        try:
            return self.proc.wait(timeout_seconds)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGUSR1)  # the daemon prints its threads' stacks
            time.sleep(1.0)
            raise AssertionError(f"esm run did not exit within {timeout_seconds:g}s\n"
                                 f"{self.log_tail(20000)}") from None

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return "daemon log (tail):\n" + self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no daemon log)"

    def _assert_running(self, when: str) -> None:
        assert self.proc is not None, "daemon not started"
        code = self.proc.poll()
        if code is not None:
            raise AssertionError(f"esm run exited with {code} {when}\n{self.log_tail()}")


def run_until_settled(config: Path, env: dict[str, str], log_path: Path, journal: Journal,
                      ids: Iterable[str], settled: Callable[[], bool],
                      describe: Callable[[], str], timeout_seconds: float = 120,
                      ) -> dict[str, float]:
    """Start the daemon, wait until every record of `ids` was processed and `settled()`
    holds (the broker has nothing left), then SIGTERM it: exit 0. Returns its last /metrics."""
    expected = set(ids)
    with DaemonProcess(config, env, log_path) as daemon:
        daemon.wait_ready()
        wait_until(lambda: set(journal.ok_ids()) >= expected, timeout_seconds,
                   lambda: f"{missing(expected, journal.ok_ids())}\n{daemon.log_tail()}")
        wait_until(settled, timeout_seconds, lambda: f"{describe()}\n{daemon.log_tail()}")
        metrics = daemon.metrics()
        daemon.terminate()
        code = daemon.wait_exit(30)
        assert code == 0, f"esm run exited {code} after SIGTERM\n{daemon.log_tail()}"
    return metrics


def parse_metrics(text: str) -> dict[str, float]:
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}"] = sample.value
    return samples


def wait_until(condition: Callable[[], bool], timeout_seconds: float,
               describe: Callable[[], str], interval_seconds: float = 0.1) -> None:
    """Poll `condition` until true; AssertionError with `describe()` after the timeout."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        if condition():
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"after {timeout_seconds:g}s: {describe()}")
        time.sleep(interval_seconds)


class Journal:
    """What the handler recorded, read back from its file (see tests.integration.handlers)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def lines(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [line for line in read_journal(self.path) if kind is None or line["kind"] == kind]

    def ok_ids(self) -> list[str]:
        """Record ids the handler processed successfully, once per successful delivery."""
        return [line["id"] for line in self.lines("ok")]

    def duplicated(self) -> list[str]:
        """Records processed successfully more than once."""
        counts = Counter(self.ok_ids())
        return sorted(i for i, n in counts.items() if n > 1)

    def processed(self) -> int:
        """How many distinct records were processed successfully so far."""
        return len(set(self.ok_ids()))

    def redelivered_unfailed(self) -> set[str]:
        """Records that succeeded on a delivery after the first without ever failing: they
        came back because a killed daemon held them unacked."""
        failed = {line["id"] for line in self.lines("fail")}
        return {line["id"] for line in self.lines("ok")
                if line["delivery"] > 1 and line["id"] not in failed}


def kill_at_progress(config: Path, env: dict[str, str], log_path: Path, journal: Journal,
                     targets: Iterable[int], timeout_seconds: float = 120,
                     graceful: bool = False) -> list[int]:
    """For each target: start the daemon, wait until the journal shows that many distinct
    records processed, then kill -9 it (or, with `graceful`, SIGTERM it and expect exit 0).
    Returns the progress seen right after each stop."""
    seen = []
    for target in targets:
        with DaemonProcess(config, env, log_path) as daemon:
            daemon.wait_ready()
            wait_until(lambda t=target: journal.processed() >= t, timeout_seconds,
                       lambda: f"stuck at {journal.processed()}\n{daemon.log_tail()}")
            if graceful:
                daemon.terminate()
                code = daemon.wait_exit(30)
                assert code == 0, f"esm run exited {code} after SIGTERM\n{daemon.log_tail()}"
            else:
                daemon.kill()
            seen.append(journal.processed())
    return seen


def missing(expected: Iterable[str], seen: Iterable[str], show: int = 20) -> str:
    """'N missing: first ids…' for failure messages."""
    gone = sorted(set(expected) - set(seen))
    return f"{len(gone)} record(s) never processed successfully: {gone[:show]}" + (
        " …" if len(gone) > show else "")
