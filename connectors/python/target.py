"""The `python` target: call `handler(event, context)` in this process, like the Lambda
Python runtime does (DESIGN §6).

- The handler (`module:function`) is imported once, by `load()` (the daemon calls it at
  start, so a bad handler is a startup `ConfigError`) or else by the first `invoke`.
- Each invocation gets an event of its own, so handlers may mutate it: the document the
  invoker built for this call alone (`Event.owned`, no encode and decode), else a fresh
  parse of the event body; and a Lambda-compatible context (`LambdaContext`). Beyond
  Lambda's attributes it carries `idempotency_key` (the same when the same records are
  invoked again), also found where Lambda puts caller data,
  `context.client_context.custom["idempotency_key"]`.
- An overrun of `timeout_seconds` gives `FunctionFailed("Sandbox.Timedout", "Task timed
  out after 3.00 seconds")`, Lambda's wording. The daemon's lane workers call
  `invoke_inline`: the handler runs on the lane worker's own thread and the pipeline keeps
  the timeout (esm.threads.overruns), which saves two thread hand-offs per batch. Other
  callers (tumbling windows, redrive) call `invoke`, which runs the handler on a helper
  thread and waits for it with the timeout. Either way Python cannot kill a thread: the
  stray call keeps running on its thread and the next call gets a fresh one (no deadlock);
  once 32 timed-out calls are still running, invocations fail as invoke errors rather than
  pile up threads (connectors/python/calls.py, esm.pipeline.invoker).
- An exception → `FunctionFailed(type name, str(exc), stack lines)`; the return value must
  be JSON-serialisable as in Lambda (Decimals become numbers), else `Runtime.MarshalError`.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from connectors.python.calls import CallRunner
from esm.errors import ConfigError
from esm.interfaces import Clock, ConnectorContext
from esm.records import Event, FunctionFailed, InvokeResult, Returned

try:  # orjson is a dependency; the fallback keeps the target usable without it.
    import orjson

    _loads: Callable[[bytes], Any] = orjson.loads
except ImportError:  # pragma: no cover
    _loads = json.loads

MAX_ABANDONED_CALLS = 32
_HANDLER_FORM = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_SYS_PATH_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class PythonSettings:
    handler: str = field(metadata={"doc": "the function to call, as 'module:function'"})
    timeout_seconds: float = field(
        default=3.0, metadata={"min": 1, "max": 900, "doc": "Lambda's function timeout"})
    function_name: str | None = field(
        default=None, metadata={"doc": "context.function_name; default: the mapping's name"})
    memory_limit_in_mb: int = field(
        default=128, metadata={"min": 128, "max": 10240, "doc": "context.memory_limit_in_mb"})
    python_path: tuple[str, ...] = field(
        default=(), metadata={"doc": "folders put in front of sys.path before importing"})
    region: str = field(
        default="us-east-1", metadata={"doc": "region shown in context.invoked_function_arn"})

    def __post_init__(self) -> None:
        if not _HANDLER_FORM.match(self.handler):
            raise ConfigError(f"handler: must be 'module:function', got {self.handler!r}")


class ClientContext:
    """Lambda's `context.client_context` shape (client, custom, env); esm fills `custom`."""

    __slots__ = ("client", "custom", "env")

    def __init__(self, custom: dict[str, str]) -> None:
        self.client: Any = None
        self.custom = custom
        self.env: Any = None


class LambdaContext:
    """The Lambda Python runtime's context object, with the same attribute names, plus
    `idempotency_key` (esm's: see `esm.protection.idempotency`)."""

    __slots__ = ("function_name", "function_version", "invoked_function_arn",
                 "memory_limit_in_mb", "aws_request_id", "log_group_name", "log_stream_name",
                 "identity", "client_context", "idempotency_key", "_clock", "_deadline")

    def __init__(self, *, function_name: str, invoked_function_arn: str,
                 memory_limit_in_mb: int, aws_request_id: str, log_stream_name: str,
                 clock: Clock, deadline: float, idempotency_key: str = "") -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = invoked_function_arn
        self.memory_limit_in_mb = memory_limit_in_mb
        self.aws_request_id = aws_request_id
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = log_stream_name
        self.identity: Any = None  # only set for Cognito-authenticated mobile invokes
        # Lambda sets it from the invoker's ClientContext; esm passes the idempotency key.
        self.idempotency_key = idempotency_key
        self.client_context: Any = ClientContext({"idempotency_key": idempotency_key}) \
            if idempotency_key else None
        self._clock = clock
        self._deadline = deadline  # clock.monotonic() value at which the timeout fires

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - self._clock.monotonic()) * 1000))


class PythonTarget:
    """Calls a Python handler in-process; thread-safe (one instance per mapping)."""

    Settings = PythonSettings
    reads_body = False  # the handler gets a document, never bytes (esm.interfaces.Target)

    def __init__(self, settings: PythonSettings, context: ConnectorContext) -> None:
        self._settings = settings
        self._clock = context.clock
        self._mapping = context.mapping
        self._function_name = settings.function_name or context.mapping
        self._arn = (f"arn:aws:lambda:{settings.region}:000000000000:function:"
                     f"{self._function_name}")
        self._log_stream = f"[$LATEST]{uuid.uuid4().hex}"  # dated on first use, see below
        self._handler: Callable[[Any, Any], Any] | None = None
        self._load_lock = threading.Lock()
        self._log_day: tuple[float, float, str] = (0.0, 0.0, "")  # [start, end) and "Y/m/d"
        self._calls = CallRunner(f"esm-python-{context.mapping}", MAX_ABANDONED_CALLS)

    @property
    def function_arn(self) -> str:
        """The ARN shown in the context and in on-failure notices' requestContext."""
        return self._arn

    def load(self) -> None:
        """Import the handler now; ConfigError naming what is wrong. Idempotent."""
        with self._load_lock:
            if self._handler is None:
                self._handler = _import_handler(self._settings, self._mapping)

    def invoke(self, event: Event, timeout_seconds: float) -> InvokeResult:
        """Run the handler on a helper thread within `timeout_seconds`; never raises for
        handler behaviour."""
        call = self._call(event, timeout_seconds)
        if isinstance(call, FunctionFailed):
            return call
        result = self._calls.run(call.run, timeout_seconds)
        return self.overrun_result(timeout_seconds) if result is None else result

    def invoke_inline(self, event: Event, timeout_seconds: float) -> InvokeResult:
        """Run the handler on the calling thread (esm.interfaces.InlineTarget): the caller
        keeps the timeout and takes `overrun_result` when the handler overruns it."""
        call = self._call(event, timeout_seconds)
        return call if isinstance(call, FunctionFailed) else call.run()

    def overrun_result(self, timeout_seconds: float) -> FunctionFailed:
        """What Lambda reports for a handler that ran past its timeout."""
        return FunctionFailed("Sandbox.Timedout",
                              f"Task timed out after {timeout_seconds:.2f} seconds")

    def _call(self, event: Event, timeout_seconds: float) -> _HandlerCall | FunctionFailed:
        try:
            if self._handler is None:  # lock-free after the first call
                self.load()
        except ConfigError as exc:
            # Lambda reports an unimportable handler as a function error at invoke time.
            return FunctionFailed("Runtime.ImportModuleError", str(exc))
        handler = self._handler
        assert handler is not None
        context = self._context(event, timeout_seconds)
        return _HandlerCall(handler, event.document if event.owned else event.body, context)

    def close(self) -> None:
        self._calls.close()

    def _context(self, event: Event, timeout_seconds: float) -> LambdaContext:
        return LambdaContext(
            function_name=self._function_name, invoked_function_arn=self._arn,
            memory_limit_in_mb=self._settings.memory_limit_in_mb,
            aws_request_id=event.request_id, log_stream_name=self._log_stream_name(),
            clock=self._clock, deadline=self._clock.monotonic() + timeout_seconds,
            idempotency_key=event.idempotency_key)

    def _log_stream_name(self) -> str:
        # Lambda's form: YYYY/MM/DD/[$LATEST]<32 hex>, dated in UTC. The date string is
        # formatted once per UTC day, not per invocation (a hot path at small batch sizes).
        now = self._clock.now()
        start, end, day = self._log_day
        if not start <= now < end:
            start = now - now % 86400
            day = time.strftime("%Y/%m/%d", time.gmtime(now))
            self._log_day = (start, start + 86400, day)
        return f"{day}/{self._log_stream}"


class _HandlerCall:
    """One invocation, run on a pool thread; returns a result and never raises."""

    __slots__ = ("_handler", "_body", "_context")

    def __init__(self, handler: Callable[[Any, Any], Any], event: bytes | Mapping[str, Any],
                 context: LambdaContext) -> None:
        self._handler, self._body, self._context = handler, event, context

    def run(self) -> InvokeResult:
        try:
            body = self._body  # bytes: parsed here, so each call has its own copy
            event = _loads(body) if isinstance(body, bytes) else body
            value = self._handler(event, self._context)
        except SystemExit as exc:
            return FunctionFailed("Runtime.ExitError", f"handler called sys.exit({exc.code!r})")
        except BaseException as exc:  # noqa: BLE001 - user code: any raise is a function error
            return _failed_from(exc)
        return _marshal(value)


def _failed_from(exc: BaseException) -> FunctionFailed:
    frames = traceback.extract_tb(exc.__traceback__)
    # Drop this module's own frames (the call wrapper) so the trace starts in user code.
    while frames and frames[0].filename == __file__:
        frames.pop(0)
    stack = tuple(traceback.format_list(frames))
    return FunctionFailed(type(exc).__name__, str(exc), stack)


_RETURNED_NONE = Returned(payload=None)


def _marshal(value: Any) -> InvokeResult:
    """JSON-roundtrip the return value as the Lambda runtime's `to_json` does. `None`, the
    usual return of a handler that reports no failures, round-trips to itself: skip it."""
    if value is None:
        return _RETURNED_NONE
    try:
        encoded = json.dumps(value, default=_decimal_to_number)
        return Returned(payload=_loads(encoded.encode()))
    except (TypeError, ValueError) as exc:
        return FunctionFailed("Runtime.MarshalError", f"Unable to marshal response: {exc}")


def _decimal_to_number(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _import_handler(settings: PythonSettings, mapping: str) -> Callable[[Any, Any], Any]:
    """Import `module:attr.path`; ConfigError that says which part failed and why."""
    where = f"mapping {mapping!r}: target.handler {settings.handler!r}"
    module_name, _, attr_path = settings.handler.partition(":")
    _extend_sys_path(settings.python_path)
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - importing user code can raise anything
        raise ConfigError(f"{where}: cannot import module {module_name!r}: "
                          f"{type(exc).__name__}: {exc}") from exc
    for name in attr_path.split("."):
        try:
            obj = getattr(obj, name)
        except AttributeError:
            raise ConfigError(f"{where}: {module_name!r} has no attribute {attr_path!r}") from None
    if not callable(obj):
        raise ConfigError(f"{where}: {attr_path!r} is a {type(obj).__name__}, not callable")
    handler: Callable[[Any, Any], Any] = obj
    return handler


def _extend_sys_path(folders: tuple[str, ...]) -> None:
    with _SYS_PATH_LOCK:
        for folder in reversed(folders):
            if folder not in sys.path:
                sys.path.insert(0, folder)
