"""A real Prometheus (Debian package `prometheus`, which also ships `promtool`) for the
dashboard and alert-rule tests.

`PrometheusServer(targets)` runs one server as a subprocess on a free 127.0.0.1 port with
its data in a temporary folder, scraping the given `host:port` targets every second; `query`
runs an instant PromQL query through the HTTP API. `promtool()` is the path of promtool.

When Prometheus cannot be installed or started the tests FAIL (ServerUnavailable).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from tests.servers.common import (
    ServerUnavailable,
    ensure_debian_package,
    free_port,
    stop_process,
    wait_for_port,
)

PACKAGE = "prometheus"


def prometheus_binary() -> str | None:
    return shutil.which("prometheus")


def promtool() -> str:
    ensure_installed()
    path = shutil.which("promtool")
    if path is None:
        raise ServerUnavailable(f"promtool not found although `{PACKAGE}` is installed")
    return path


def ensure_installed() -> None:
    """Install Debian's prometheus (which brings promtool) if it is missing (idempotent)."""
    ensure_debian_package(PACKAGE, "prometheus")
    ensure_debian_package(PACKAGE, "promtool")


class PrometheusServer:
    """One prometheus subprocess scraping `targets` (job "esm") every second."""

    def __init__(self, targets: list[str], scrape_interval_seconds: int = 1) -> None:
        self.port = free_port()
        self.targets = targets
        self.scrape_interval_seconds = scrape_interval_seconds
        self._dir = Path(tempfile.mkdtemp(prefix="esm-prometheus-"))
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        ensure_installed()
        binary = prometheus_binary()
        assert binary is not None
        config = self._dir / "prometheus.yml"
        config.write_text(json.dumps({  # JSON is YAML
            "global": {"scrape_interval": f"{self.scrape_interval_seconds}s",
                       "evaluation_interval": f"{self.scrape_interval_seconds}s"},
            "scrape_configs": [{"job_name": "esm",
                                "static_configs": [{"targets": self.targets}]}]}))
        log = open(self._dir / "prometheus.log", "wb")  # noqa: SIM115 (lives with the process)
        self._proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={self._dir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for_port(self.port, 30, self._proc)
            self._wait_ready(30)
        except ServerUnavailable as exc:
            self.stop()
            raise ServerUnavailable(f"{exc}; log: {self.log_tail()}") from exc

    def _wait_ready(self, timeout_seconds: float) -> None:
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise ServerUnavailable(f"prometheus on port {self.port} never became ready")

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; the result vector (ServerUnavailable-free: errors raise)."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.loads(response.read())
        if body.get("status") != "success":
            raise AssertionError(f"query failed: {expr}: {body}")
        return list(body["data"]["result"])

    def targets_up(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(self.url + "/api/v1/targets", timeout=10) as response:
            return list(json.loads(response.read())["data"]["activeTargets"])

    def log_tail(self) -> str:
        path = self._dir / "prometheus.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def stop(self) -> None:
        if self._proc is not None:
            stop_process(self._proc)
            self._proc = None
        shutil.rmtree(self._dir, ignore_errors=True)
