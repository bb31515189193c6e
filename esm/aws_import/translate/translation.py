"""The working state of one mapping's translation: its AWS parameters, taken one by one.

`Translation.take(key)` hands a parameter to whichever module translates it and marks it
carried; `leftovers()` is what nobody took, so the caller can list it (never drop it
silently). `text(...)` turns a value into configuration text, making a `${VARIABLE}` of a
value the template could not resolve.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from esm.aws_import.arns import Endpoints
from esm.aws_import.documents import AwsMapping
from esm.aws_import.intrinsics import Symbol, Text
from esm.aws_import.variables import Findings, env_name


@dataclass(frozen=True, slots=True)
class Options:
    """What the command line asks for besides the files."""

    target: str = "lambda"  # lambda | http | python
    handler: str | None = None  # python target: module:function for every mapping
    url: str | None = None  # http target: the URL for every mapping
    endpoints: Endpoints = field(default_factory=lambda: Endpoints({}))


@dataclass(frozen=True, slots=True)
class Commented:
    """A value with the comment written after it in the YAML."""

    value: Any
    comment: str


class Translation:
    def __init__(self, aws: AwsMapping, options: Options, findings: Findings,
                 name: str) -> None:
        self.aws = aws
        self.options = options
        self.findings = findings
        self.name = name
        self._params = dict(aws.params)

    def take(self, key: str, default: Any = None) -> Any:
        return self._params.pop(key, default)

    def peek(self, key: str, default: Any = None) -> Any:
        return self._params.get(key, default)

    def leftovers(self) -> dict[str, Any]:
        return dict(self._params)

    def note(self, key: str, message: str) -> None:
        where = f"{self.aws.where}.{key}" if key else self.aws.where
        self.findings.note(where, message)

    def variable(self, stem: str, meaning: str, example: str) -> str:
        return self.findings.variable(stem, meaning, example).reference

    def text(self, value: Any, stem: str, meaning: str, example: str) -> str:
        """`value` as text; a Symbol (or nothing) becomes the variable `stem`, or the
        template parameter's own name when the symbol is one."""
        if isinstance(value, Symbol):
            if (value.resource_type or "").startswith("parameter"):
                stem = value.stem()
            return self.variable(stem, f"{meaning}: {value.description}", example)
        if value is None or value == "":
            return self.variable(stem, meaning, example)
        return str(value)

    def endpoint(self, value: Any) -> str | None:
        """The `--endpoint` URL given for this value (by ARN, logical ID or export)."""
        keys = [value if isinstance(value, str) else None,
                value.origin if isinstance(value, Text) else None,
                value.key if isinstance(value, Symbol) else None]
        if value is self.aws.params.get("EventSourceArn"):
            keys.append(self.aws.source_origin)
        return self.options.endpoints.lookup(*keys)

    def stem_of(self, value: Any, fallback: str) -> str:
        """A variable stem naming what `value` refers to."""
        if isinstance(value, Symbol):
            return env_name(value.key)
        if isinstance(value, Text) and value.origin:
            return env_name(value.origin)
        return env_name(fallback)
