"""connectors.python.target: in-process handlers with Lambda's context, errors and timeout."""

from __future__ import annotations

import json
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from connectors.python import target as python_target
from connectors.python.target import PythonSettings, PythonTarget
from esm.clock import FakeClock
from esm.errors import ConfigError, InvokeError
from esm.interfaces import ConnectorContext
from esm.records import Event, FunctionFailed, Returned

HANDLERS = '''
import copy
import decimal
import sys
import threading

release = threading.Event()
seen = []

def echo(event, context):
    return {"event": event, "request_id": context.aws_request_id}

def mutate(event, context):
    seen.append(copy.deepcopy(event))
    event["Records"].clear()
    event["extra"] = True
    return None

def describe(event, context):
    return {
        "function_name": context.function_name,
        "function_version": context.function_version,
        "arn": context.invoked_function_arn,
        "memory": context.memory_limit_in_mb,
        "request_id": context.aws_request_id,
        "log_group": context.log_group_name,
        "log_stream": context.log_stream_name,
        "identity": context.identity,
        "client_context": context.client_context,
        "remaining": context.get_remaining_time_in_millis(),
    }

def helper(amount):
    raise ValueError(f"bad amount {amount}")

def fails(event, context):
    helper(12)

def returns_set(event, context):
    return {"ids": {1, 2}}

def returns_decimals(event, context):
    return {"price": decimal.Decimal("12.50"), "count": decimal.Decimal("3"), "t": (1, 2)}

def returns_string(event, context):
    return ""

def hangs(event, context):
    release.wait(30)
    return "late"

class Interrupted(BaseException):
    pass


def interrupts(event, context):
    raise Interrupted("not an Exception")


def exits(event, context):
    sys.exit(3)

not_callable = 42
'''


@pytest.fixture
def handlers(tmp_path: Path) -> Iterator[str]:
    """A fresh handler module on a private python_path; yields its module name."""
    name = f"handlers_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(HANDLERS)
    yield name
    module = sys.modules.get(name)
    if module is not None:
        module.release.set()  # let hung handler threads finish


MakeTarget = Callable[..., PythonTarget]


@pytest.fixture
def make_target(tmp_path: Path, handlers: str) -> Iterator[MakeTarget]:
    clock = FakeClock()
    built: list[PythonTarget] = []

    def make(function: str = "echo", module: str | None = None, **settings: object) -> PythonTarget:
        spec = f"{module or handlers}:{function}"
        s = PythonSettings(handler=spec, python_path=(str(tmp_path),), **settings)  # type: ignore[arg-type]
        target = PythonTarget(s, ConnectorContext("orders", threading.Event(), clock))
        built.append(target)
        return target

    yield make
    for target in built:
        target.close()


def event(document: object | None = None, request_id: str = "req-1") -> Event:
    doc = document if document is not None else {"Records": [{"body": "x"}]}
    return Event(document=doc, body=json.dumps(doc).encode(), request_id=request_id)  # type: ignore[arg-type]


# ---- loading the handler ----------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["handlers", "handlers.echo", "a:b:c", ":echo", "mod:", "1x:y"])
def test_handler_not_in_module_function_form_is_a_config_error(spec: str) -> None:
    # Given / When a handler string without the module:function form
    with pytest.raises(ConfigError) as err:
        PythonSettings(handler=spec)
    # Then the error names the key and the bad value
    assert "handler: must be 'module:function'" in str(err.value)
    assert repr(spec) in str(err.value)


def test_load_reports_a_missing_module(make_target: MakeTarget) -> None:
    # Given a handler in a module that does not exist
    target = make_target("echo", module="no_such_module_xyz")
    # When loaded at daemon start / Then a ConfigError names the mapping and the module
    with pytest.raises(ConfigError, match=r"mapping 'orders'.*cannot import module "
                                          r"'no_such_module_xyz': ModuleNotFoundError"):
        target.load()


def test_load_reports_an_error_raised_while_importing(tmp_path: Path,
                                                      make_target: MakeTarget) -> None:
    # Given a module that raises at import time
    name = f"broken_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text("raise RuntimeError('no database')\n")
    # When loaded / Then the error carries the exception
    with pytest.raises(ConfigError, match="RuntimeError: no database"):
        make_target("handle", module=name).load()


def test_load_reports_a_syntax_error(tmp_path: Path, make_target: MakeTarget) -> None:
    # Given a module with a syntax error
    name = f"syntax_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text("def handle(:\n")
    # When loaded / Then the error says so
    with pytest.raises(ConfigError, match="SyntaxError"):
        make_target("handle", module=name).load()


def test_load_reports_a_missing_attribute(make_target: MakeTarget, handlers: str) -> None:
    # Given a function name the module does not define
    target = make_target("nope")
    # When loaded / Then the error names module and attribute
    with pytest.raises(ConfigError, match=f"'{handlers}' has no attribute 'nope'"):
        target.load()


def test_load_reports_a_handler_that_is_not_callable(make_target: MakeTarget) -> None:
    # Given an attribute that is an int
    target = make_target("not_callable")
    # When loaded / Then the error says it is not callable
    with pytest.raises(ConfigError, match="'not_callable' is a int, not callable"):
        target.load()


def test_unloadable_handler_at_invoke_is_an_import_module_function_error(
        make_target: MakeTarget) -> None:
    # Given a target whose handler cannot be imported and was never load()ed
    target = make_target("nope")
    # When invoked
    result = target.invoke(event(), 1.0)
    # Then it fails like Lambda does, as a function error
    assert isinstance(result, FunctionFailed)
    assert result.error_type == "Runtime.ImportModuleError"
    assert "has no attribute 'nope'" in result.error_message


# ---- invoking -----------------------------------------------------------------------------------


def test_handler_gets_the_event_and_its_return_value_comes_back(make_target: MakeTarget) -> None:
    # Given an echo handler
    target = make_target("echo")
    # When invoked
    result = target.invoke(event({"Records": [{"n": 1}]}, request_id="abc"), 1.0)
    # Then the payload is the handler's return value as JSON would carry it
    assert result == Returned(payload={"event": {"Records": [{"n": 1}]}, "request_id": "abc"})


def test_each_invoke_parses_a_fresh_event_so_handlers_may_mutate_it(
        make_target: MakeTarget, handlers: str) -> None:
    # Given a handler that empties the event it receives
    target = make_target("mutate")
    ev = event({"Records": [{"n": 1}]})
    # When invoked twice with the same Event
    target.invoke(ev, 1.0)
    target.invoke(ev, 1.0)
    # Then the second call saw the original document, and so does the Event
    seen = sys.modules[handlers].seen
    assert seen == [{"Records": [{"n": 1}]}, {"Records": [{"n": 1}]}]
    assert ev.document == {"Records": [{"n": 1}]}


def test_context_has_lambdas_fields(make_target: MakeTarget) -> None:
    # Given a target for mapping "orders" with a 128 MB default
    target = make_target("describe")
    # When invoked with a 2.5 s timeout under a fake clock that does not move
    result = target.invoke(event(request_id="req-42"), 2.5)
    # Then the context matches the Lambda runtime's
    assert isinstance(result, Returned)
    ctx = result.payload
    assert ctx["function_name"] == "orders"
    assert ctx["function_version"] == "$LATEST"
    assert ctx["arn"] == "arn:aws:lambda:us-east-1:000000000000:function:orders"
    assert ctx["memory"] == 128
    assert ctx["request_id"] == "req-42"
    assert ctx["log_group"] == "/aws/lambda/orders"
    assert ctx["log_stream"].startswith("2023/11/14/[$LATEST]")
    assert ctx["identity"] is None and ctx["client_context"] is None
    assert ctx["remaining"] == 2500


def test_context_uses_configured_function_name_memory_and_region(make_target: MakeTarget) -> None:
    # Given explicit settings
    target = make_target("describe", function_name="billing", memory_limit_in_mb=512,
                         region="eu-west-1")
    # When invoked
    result = target.invoke(event(), 1.0)
    # Then the context reflects them
    assert isinstance(result, Returned)
    assert result.payload["arn"] == "arn:aws:lambda:eu-west-1:000000000000:function:billing"
    assert result.payload["memory"] == 512
    assert result.payload["log_group"] == "/aws/lambda/billing"
    # And notices use the same ARN
    assert target.function_arn == result.payload["arn"]


def test_exception_becomes_function_failed_with_user_stack(make_target: MakeTarget) -> None:
    # Given a handler that raises from a helper
    target = make_target("fails")
    # When invoked
    result = target.invoke(event(), 1.0)
    # Then type, message and the user's frames (not esm's) are recorded
    assert isinstance(result, FunctionFailed)
    assert (result.error_type, result.error_message) == ("ValueError", "bad amount 12")
    assert len(result.stack_trace) == 2
    assert "in fails" in result.stack_trace[0]
    assert "in helper" in result.stack_trace[1]
    assert all("targets/python.py" not in line for line in result.stack_trace)


def test_non_serialisable_return_is_a_marshal_error(make_target: MakeTarget) -> None:
    # Given a handler returning a set
    result = make_target("returns_set").invoke(event(), 1.0)
    # Then it fails as Lambda's runtime does
    assert isinstance(result, FunctionFailed)
    assert result.error_type == "Runtime.MarshalError"
    assert result.error_message.startswith("Unable to marshal response:")
    assert "set" in result.error_message


def test_decimals_and_tuples_are_marshalled_like_lambda(make_target: MakeTarget) -> None:
    # Given a handler returning Decimals (DynamoDB's boto3 types) and a tuple
    result = make_target("returns_decimals").invoke(event(), 1.0)
    # Then they arrive as JSON numbers and an array
    assert result == Returned(payload={"price": 12.5, "count": 3, "t": [1, 2]})


def test_empty_string_return_is_passed_back_as_a_json_string(make_target: MakeTarget) -> None:
    # Given a handler returning "" (a complete success for partial batch responses)
    result = make_target("returns_string").invoke(event(), 1.0)
    # Then the payload is the empty string, not None
    assert result == Returned(payload="")


def test_sys_exit_is_a_runtime_exit_error(make_target: MakeTarget) -> None:
    # Given a handler that calls sys.exit
    result = make_target("exits").invoke(event(), 1.0)
    # Then the daemon survives and reports a function error
    assert isinstance(result, FunctionFailed)
    assert result.error_type == "Runtime.ExitError"


# ---- timeouts and the worker pool -------------------------------------------------------------


def test_overrunning_handler_times_out_with_lambdas_wording(make_target: MakeTarget) -> None:
    # Given a handler that hangs
    target = make_target("hangs")
    # When invoked with a 0.2 s timeout
    result = target.invoke(event(), 0.2)
    # Then it is a Sandbox.Timedout function error
    assert result == FunctionFailed("Sandbox.Timedout", "Task timed out after 0.20 seconds")


def test_stuck_handler_does_not_block_later_invocations(make_target: MakeTarget,
                                                        handlers: str) -> None:
    # Given a target whose handler hung twice and timed out
    hanging, echo = make_target("hangs"), make_target("echo")
    assert isinstance(hanging.invoke(event(), 0.1), FunctionFailed)
    assert isinstance(hanging.invoke(event(), 0.1), FunctionFailed)
    # When another handler runs while those calls are still stuck
    # Then it runs on a fresh thread and succeeds

    assert echo.invoke(event(request_id="r2"), 1.0) == Returned(
        payload={"event": {"Records": [{"body": "x"}]}, "request_id": "r2"})
    # And once the stuck calls end, the hanging target works again
    sys.modules[handlers].release.set()
    assert hanging.invoke(event(), 1.0) == Returned(payload="late")


def test_too_many_stuck_calls_raise_invoke_error(make_target: MakeTarget,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a limit of two timed-out calls still running
    monkeypatch.setattr(python_target, "MAX_ABANDONED_CALLS", 2)
    target = make_target("hangs")
    target.invoke(event(), 0.05)
    target.invoke(event(), 0.05)
    # When invoked again / Then the target refuses rather than start more threads
    with pytest.raises(InvokeError, match="2 timed-out handler calls are still running"):
        target.invoke(event(), 0.05)


def test_concurrent_invocations_get_their_own_results(make_target: MakeTarget) -> None:
    # Given one target shared by eight lane workers
    target = make_target("echo")
    results: dict[str, object] = {}

    def call(i: int) -> None:
        results[f"r{i}"] = target.invoke(event({"i": i}, request_id=f"r{i}"), 5.0)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    # When they invoke at the same time
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Then every call got back its own event and request id
    for i in range(8):
        assert results[f"r{i}"] == Returned(payload={"event": {"i": i}, "request_id": f"r{i}"})


def test_invoke_after_close_raises_invoke_error(make_target: MakeTarget) -> None:
    # Given a closed target
    target = make_target("echo")
    target.invoke(event(), 1.0)
    target.close()
    # When invoked / Then the event never reaches the function
    with pytest.raises(InvokeError, match="closed"):
        target.invoke(event(), 1.0)


def test_load_is_idempotent_and_imports_once(make_target: MakeTarget, handlers: str) -> None:
    # Given a loaded target
    target = make_target("echo")
    target.load()
    module = sys.modules[handlers]
    # When loaded again
    target.load()
    # Then the module was not re-imported
    assert sys.modules[handlers] is module


def test_settings_document_every_field() -> None:
    # Given the settings dataclass / Then every field has a doc for `esm validate` and docs
    import dataclasses

    for f in dataclasses.fields(PythonSettings):
        assert f.metadata.get("doc"), f.name
    # And the timeout range is Lambda's
    timeout = {f.name: f for f in dataclasses.fields(PythonSettings)}["timeout_seconds"]
    assert (timeout.metadata["min"], timeout.metadata["max"]) == (1, 900)



def test_inline_invocation_returns_what_invoke_returns_and_overruns_read_as_a_timeout(
        make_target: MakeTarget) -> None:
    # Given the echo handler
    target = make_target("echo")
    # When it is invoked inline (as lane workers do)
    result = target.invoke_inline(event(request_id="r3"), 1.0)
    # Then it returned what `invoke` returns, and its timeout result is Lambda's wording
    assert result == Returned(payload={"event": {"Records": [{"body": "x"}]}, "request_id": "r3"})
    assert target.overrun_result(3.0) == FunctionFailed("Sandbox.Timedout",
                                                        "Task timed out after 3.00 seconds")


def test_a_handler_raising_a_base_exception_is_a_function_error_inline_too(
        make_target: MakeTarget) -> None:
    # Given a handler that raises a BaseException that is not an Exception
    target = make_target("interrupts")
    # When it is invoked inline and on a helper thread
    # Then both report a function error naming it, and the daemon's thread carries on
    for result in (target.invoke_inline(event(), 1.0), target.invoke(event(), 1.0)):
        assert isinstance(result, FunctionFailed)
        assert (result.error_type, result.error_message) == ("Interrupted", "not an Exception")
