"""The invoked function → an esm `target:` block (`lambda`, `python` or `http`).

`lambda` (the default) invokes the same function by name; `--endpoint FUNCTION=URL` points
it at a Lambda-compatible endpoint (an emulator). `python` calls the handler in-process:
`--handler module:function`, else the function's `Handler` when its runtime is Python
(`app.lambda_handler` → `app:lambda_handler`). `http` posts to `--url`. The function's
`Timeout`, when the template gives it, becomes `timeout_seconds`.
"""

from __future__ import annotations

from typing import Any

from esm.aws_import.arns import function_name, parse_arn
from esm.aws_import.intrinsics import Symbol, Text
from esm.aws_import.translate.translation import Translation

MAX_TIMEOUT_SECONDS = 900


def target(t: Translation) -> dict[str, Any]:
    function = t.aws.function
    name = function.name
    stem = t.stem_of(name, function_name(str(name)) if isinstance(name, str) else "function")
    if t.options.target == "python":
        block = {"type": "python", "handler": _handler(t, stem)}
        if isinstance(name, str) and "${" not in name:
            block["function_name"] = function_name(name)
    elif t.options.target == "http":
        block = {"type": "http", "url": t.options.url or t.variable(
            stem + "_URL", f"URL that answers for the function {_shown(name)} (a Lambda-style "
                           "HTTP adapter)", "http://127.0.0.1:8080/invoke")}
    else:
        block = _lambda(t, name, stem)
    timeout = _timeout(t, function.timeout)
    if timeout is not None:
        block["timeout_seconds"] = timeout
    return block


def _lambda(t: Translation, name: Any, stem: str) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "lambda", "function_name": t.text(
        name, stem + "_FUNCTION_NAME" if not stem.endswith("_FUNCTION") else stem + "_NAME",
        "the Lambda function's deployed name", "my-function")}
    keys = [name if isinstance(name, str) else None, t.aws.function.logical_id,
            function_name(name) if isinstance(name, str) else None,
            name.origin if isinstance(name, Text) else None]
    endpoint = t.options.endpoints.lookup(*keys)
    if endpoint:
        block["endpoint_url"] = endpoint
        arn = parse_arn(name)
        if arn and arn.literal_region:
            block["region"] = arn.literal_region
    return block


def _handler(t: Translation, stem: str) -> str:
    if t.options.handler:
        return t.options.handler
    function = t.aws.function
    runtime = function.runtime or ""
    if function.handler and runtime.startswith("python") and "." in function.handler:
        module, _, attribute = function.handler.rpartition(".")
        return f"{module.replace('/', '.')}:{attribute}"
    about = f"(Handler {function.handler}, Runtime {runtime or 'unknown'})"
    return t.variable(stem + "_HANDLER", f"the Python handler as module:function {about}",
                      "app:lambda_handler")


def _timeout(t: Translation, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, Symbol):
        return t.variable(value.stem(), f"the function's timeout in seconds: "
                                        f"{value.description}", "30")
    if isinstance(value, int | float) and value > MAX_TIMEOUT_SECONDS:
        return MAX_TIMEOUT_SECONDS
    return value


def _shown(name: Any) -> str:
    return name.description if isinstance(name, Symbol) else str(name)
