"""Helpers shared by the server harnesses: free ports, readiness waits, cache folder."""

from __future__ import annotations

import logging
import os
import random
import shutil
import socket
import subprocess
import time
from pathlib import Path


class ServerUnavailable(RuntimeError):
    """A real server a test needs could not be installed or started. Never skip on this."""


def cache_dir(name: str) -> Path:
    """Download cache outside the repo: $ESM_TEST_CACHE, else ~/.cache/esm-test-servers."""
    root = os.environ.get("ESM_TEST_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "esm-test-servers"
    )
    path = Path(root) / name
    path.mkdir(parents=True, exist_ok=True)
    return path


# Servers listen below the kernel's ephemeral port range. A port from that range can become
# the local port of any outgoing connection (a client reconnecting while its broker is
# down), and a server restarted on its port then fails to bind: in CI on 2026-12-06 a
# RabbitMQ killed and restarted by the damage suite met EADDRINUSE on its own port, and
# every later RabbitMQ test failed with it.
LOWEST_SERVER_PORT = 10000
_handed_out: set[int] = set()


def _ephemeral_ports_start() -> int:
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):  # not Linux: 49152 on macOS and Windows
        return 32768
    return max(low, LOWEST_SERVER_PORT + 1000)


def free_port() -> int:
    """A TCP port on 127.0.0.1, below the ephemeral range (see above), that was free a
    moment ago and that this process has not handed out before."""
    rng = random.Random()
    top = _ephemeral_ports_start() - 1
    for _ in range(500):
        port = rng.randint(LOWEST_SERVER_PORT, top)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise ServerUnavailable(f"no free TCP port between {LOWEST_SERVER_PORT} and {top}")


def maven_fetch(root: Path, pom: str, staging: Path, what: str) -> None:
    """`mvn dependency:copy-dependencies` of `pom` (written to `root`) into `staging`;
    ServerUnavailable naming `what` if Maven fails."""
    (root / "pom.xml").write_text(pom)
    done = subprocess.run(
        ["mvn", "-q", "-f", str(root / "pom.xml"), "dependency:copy-dependencies",
         "-DincludeScope=runtime", f"-DoutputDirectory={staging}"],
        capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise ServerUnavailable(f"mvn could not fetch {what}: "
                                f"{done.stdout[-2000:]}{done.stderr[-2000:]}")


def install_jars(name: str, libs: Path, pom: str, what: str, java_package: str) -> None:
    """Fetch `pom`'s runtime jars from Maven Central into `libs` (in the cache folder
    `name`), through a staging folder so that an interrupted fetch never looks finished;
    ServerUnavailable naming the missing tool (and the Debian package for it) or Maven's
    error."""
    for tool, package in (("java", java_package), ("mvn", "maven")):
        if shutil.which(tool) is None:
            raise ServerUnavailable(f"{tool} is not installed (apt-get install -y {package})")
    root = cache_dir(name)
    staging = root / "libs-staging"
    shutil.rmtree(staging, ignore_errors=True)
    maven_fetch(root, pom, staging, what)
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)


def wait_for_port(port: int, timeout_seconds: float, proc: subprocess.Popen[bytes] | None = None,
                  host: str = "127.0.0.1") -> None:
    """Block until host:port accepts connections; ServerUnavailable on timeout or exit."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServerUnavailable(f"server process exited with {proc.returncode} before "
                                    f"listening on {host}:{port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise ServerUnavailable(f"nothing listening on {host}:{port} after {timeout_seconds:.0f}s")


# Stops of this process's test servers, and those that needed SIGKILL (the command, the
# seconds waited): the run's summary prints them (tests/conftest.py), since the warning
# below is captured with a passing test's output and a CI log would never show it.
STOPS = {"clean": 0}
FORCED_STOPS: list[tuple[str, float]] = []


def stop_process(proc: subprocess.Popen[bytes], timeout_seconds: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it does not exit in time: logged and noted, because a
    server killed that way may lose its last writes, and a test that then counts a loss
    must say so."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout_seconds)
        STOPS["clean"] += 1
    except subprocess.TimeoutExpired:
        command = " ".join(str(a) for a in proc.args[:3])
        logging.getLogger("tests.servers").warning(
            "%s did not exit within %.0f s of SIGTERM: SIGKILL (writes it had not yet put "
            "on disk are lost)", command, timeout_seconds)
        FORCED_STOPS.append((command, timeout_seconds))
        proc.kill()
        proc.wait(timeout_seconds)


class ServerProcess:
    """A server subprocess with its output in a log file: start it with `launch`, then
    `stop`, `restart` (subclasses define `start`) and `log_tail` for failure messages."""

    name = "server"
    port: int

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None

    def start(self) -> None:
        raise NotImplementedError

    def launch(self, command: list[str], log_path: Path, startup_seconds: float) -> None:
        """Start `command`, wait until `self.port` answers; ServerUnavailable with the
        log's tail if it does not."""
        self._log_path = log_path
        with open(log_path, "ab") as log:  # the child keeps its own descriptor
            self._proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for_port(self.port, startup_seconds, self._proc)
        except ServerUnavailable as exc:
            raise ServerUnavailable(f"{self.name} did not start: {exc}\n{self.log_tail()}") \
                from exc

    def stop(self) -> None:
        if self._proc is not None:
            stop_process(self._proc)
            self._proc = None

    def restart(self) -> None:
        """Stop and start again on the same port and data (a broker restart)."""
        self.stop()
        self.start()

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self._log_path.read_text(errors="replace")[-chars:] if self._log_path \
                else "(no log)"
        except OSError:
            return "(no log)"


def ensure_debian_package(package: str, binary: str) -> str:
    """The path of `binary`, installing Debian's `package` first if it is missing
    (`apt-get update` only when the first install cannot find the package)."""
    import shutil

    found = shutil.which(binary)
    if found:
        return found
    if not _apt("install", "-y", "--no-install-recommends", package):
        _apt("update")
        _apt("install", "-y", "--no-install-recommends", package)
    found = shutil.which(binary)
    if not found:
        raise ServerUnavailable(f"{binary} not found and `apt-get install -y {package}` did "
                                "not provide it")
    return found


def _apt(*args: str) -> bool:
    try:
        result = subprocess.run(["apt-get", *args], capture_output=True, check=False,
                                timeout=900)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0
