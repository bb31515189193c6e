"""AWS's Lambda Runtime Interface Emulator (RIE) running unmodified Python handlers.

RIE is the emulator inside every AWS Lambda base image: it serves Lambda's Invoke API
(`POST /2015-03-31/functions/function/invocations`) and a Runtime API for the runtime it
starts. It is built from source with the machine's Go toolchain (`go install`, Go module
proxy) into the shared test cache, outside the repo, with GOPATH, GOMODCACHE and GOCACHE
there too; a missing `go` is a ServerUnavailable naming it, never a skip.

Each `LambdaRie` runs one handler as Lambda does:

    aws-lambda-rie --runtime-interface-emulator-address 127.0.0.1:<port>
                   --runtime-api-address 127.0.0.1:<port> python -m awslambdaric <handler>

RIE takes the last argument as the handler, runs the command in its working directory
(the repo root here, so `tests.…` handler modules import) and sets AWS_LAMBDA_RUNTIME_API
for it; AWS_LAMBDA_FUNCTION_TIMEOUT is the function's timeout. Both addresses are free
ports (RIE's defaults, 8080 and 9001, would collide between tests). RIE serves one
invocation at a time: a second one sent meanwhile crashes it (measured), like a real
execution environment that never takes two events at once.

The fixture `lambda_rie` is a factory: `lambda_rie("module.function", timeout_seconds=3)`
starts one emulator per handler; all are stopped by process group at teardown.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.servers.common import (
    ServerProcess,
    ServerUnavailable,
    cache_dir,
    free_port,
    wait_for_port,
)

RIE_PACKAGE = "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie"
# The module has no release tags the Go proxy understands; pinned to the commit tested.
RIE_VERSION = "v0.0.0-20261030222936-bef5c4ba774d"
BUILD_TIMEOUT_SECONDS = 900
REPO_ROOT = Path(__file__).resolve().parents[2]
INVOKE_PATH = "/2015-03-31/functions/function/invocations"


def rie_binary() -> Path:
    return cache_dir(f"lambda-rie/{RIE_VERSION}") / "bin" / "aws-lambda-rie"


def ensure_installed() -> Path:
    """Build RIE once (idempotent; a lock keeps concurrent builds apart) and make sure
    awslambdaric is importable. ServerUnavailable naming what is missing otherwise."""
    _ensure_awslambdaric()
    binary = rie_binary()
    if binary.is_file():
        return binary
    root = binary.parent.parent
    with open(root / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not binary.is_file():
            _go_install(root)
    return binary


def _go_install(root: Path) -> None:
    go = shutil.which("go")
    if go is None:
        raise ServerUnavailable(
            "the Go toolchain (`go`) is not on PATH: it builds AWS's Lambda Runtime Interface "
            f"Emulator (`go install {RIE_PACKAGE}@{RIE_VERSION}`). Install Go (golang.org/dl "
            "or Debian's golang-go, recent enough for the module's go.mod) and run "
            "`python -m tests.servers install lambda_rie`.")
    gopath = cache_dir("lambda-rie/go")
    env = {**os.environ, "GOBIN": str(root / "bin"), "GOPATH": str(gopath),
           "GOMODCACHE": str(gopath / "pkg" / "mod"), "GOCACHE": str(gopath / "cache"),
           "GOFLAGS": "-modcacherw", "CGO_ENABLED": "0"}
    try:
        result = subprocess.run([go, "install", f"{RIE_PACKAGE}@{RIE_VERSION}"], cwd=root,
                                env=env, capture_output=True, text=True,
                                timeout=BUILD_TIMEOUT_SECONDS)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ServerUnavailable(f"`{go} install {RIE_PACKAGE}@{RIE_VERSION}` failed: {exc}") \
            from exc
    if result.returncode != 0 or not rie_binary().is_file():
        raise ServerUnavailable(f"`{go} install {RIE_PACKAGE}@{RIE_VERSION}` failed "
                                f"(exit {result.returncode}):\n"
                                + (result.stdout + result.stderr)[-2000:])


def _ensure_awslambdaric() -> None:
    if importlib.util.find_spec("awslambdaric") is not None:
        return
    result = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "awslambdaric"],
                            capture_output=True, text=True, timeout=600)
    importlib.invalidate_caches()
    if result.returncode != 0 or importlib.util.find_spec("awslambdaric") is None:
        raise ServerUnavailable("awslambdaric (AWS's Python runtime interface client) is "
                                "not installed and `pip install awslambdaric` failed:\n"
                                + (result.stdout + result.stderr)[-2000:])


class LambdaRie(ServerProcess):
    """One emulator running `handler` ("module.function") with a function timeout of
    `timeout_seconds`; `endpoint_url` is what a boto3 Lambda client is given."""

    name = "aws-lambda-rie"

    def __init__(self, handler: str, timeout_seconds: int = 30,
                 env: dict[str, str] | None = None) -> None:
        super().__init__()
        self.handler = handler
        self.timeout_seconds = timeout_seconds
        self.port = free_port()
        self.runtime_api_port = free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self.invoke_url = self.endpoint_url + INVOKE_PATH
        self._env = env or {}
        self._dir = Path(tempfile.mkdtemp(prefix="esm-rie-"))

    def start(self) -> None:
        binary = ensure_installed()
        command = [str(binary), "--log-level", "error",
                   "--runtime-interface-emulator-address", f"127.0.0.1:{self.port}",
                   "--runtime-api-address", f"127.0.0.1:{self.runtime_api_port}",
                   sys.executable, "-m", "awslambdaric", self.handler]
        env = {**os.environ, "AWS_LAMBDA_FUNCTION_TIMEOUT": str(self.timeout_seconds),
               "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1", **self._env}
        self._log_path = self._dir / "rie.log"
        with open(self._log_path, "ab") as log:
            # Its own process group: RIE starts the runtime as a child; stop() ends both.
            self._proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                          cwd=REPO_ROOT, env=env, start_new_session=True)
        self._wait_listening()

    def _wait_listening(self) -> None:
        try:
            wait_for_port(self.port, 20, self._proc)
        except ServerUnavailable as exc:
            self.stop()
            raise ServerUnavailable(f"{self.name} ({self.handler}) did not start: {exc}\n"
                                    f"{self.log_tail()}") from exc

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        try:  # the runtime child, if RIE left it behind
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)


StartRie = Callable[..., LambdaRie]


@pytest.fixture
def lambda_rie() -> Iterator[StartRie]:
    """Factory: `lambda_rie(handler, timeout_seconds=30, env=None)` → a started LambdaRie.
    Every emulator started is stopped (by process group) when the test ends."""
    started: list[LambdaRie] = []

    def start(handler: str, timeout_seconds: int = 30,
              env: dict[str, str] | None = None) -> LambdaRie:
        rie = LambdaRie(handler, timeout_seconds, env)
        started.append(rie)
        rie.start()
        return rie

    try:
        yield start
    finally:
        for rie in started:
            rie.cleanup()
