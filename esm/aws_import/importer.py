"""Files in, one esm configuration out: the whole import without the command line.

`import_files(paths, options)` returns an `ImportResult`: the YAML text, the mappings as
data, the variables to set and the notes (what was not carried over, and why). A file it
cannot read raises `UnreadableFile` (the command exits 2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from esm.aws_import.documents import NotAMappingDocument, find_mappings
from esm.aws_import.template import UnreadableFile, read_document
from esm.aws_import.translate.mapping import translate
from esm.aws_import.translate.translation import Commented, Options
from esm.aws_import.variables import Findings, Note, Variable
from esm.aws_import.writer import render

MAX_NAME = 64  # esm's mapping name rule: [a-z0-9][a-z0-9_.-]*, at most 64 characters
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


@dataclass(frozen=True, slots=True)
class ImportResult:
    text: str
    mappings: list[dict[str, Any]]
    variables: list[Variable]
    notes: list[Note]

    def example_environment(self) -> dict[str, str]:
        """Every variable set to its example: enough for `esm validate` to check the shape."""
        return {v.name: v.example for v in self.variables}


def import_files(paths: list[str], options: Options) -> ImportResult:
    findings = Findings()
    found: list[tuple[str, dict[str, Any]]] = []
    names: set[str] = set()
    for path in paths:
        try:
            candidates = find_mappings(read_document(path), path, findings)
        except NotAMappingDocument as exc:
            raise UnreadableFile(str(exc)) from None
        if not candidates:
            raise UnreadableFile(f"{path}: no event source mappings found (looked for "
                                 "AWS::Lambda::EventSourceMapping resources and "
                                 "AWS::Serverless::Function events of types SQS, Kinesis, "
                                 "DynamoDB, MSK, SelfManagedKafka and MQ)")
        for aws in candidates:
            name = unique_name(aws.name, names)
            mapping = translate(aws, name, options, findings)
            if mapping is not None:
                names.add(name)
                found.append((aws.where, mapping))
    for key in options.endpoints.unused():
        findings.note("--endpoint", f"{key} matched no ARN, logical ID or function name")
    return ImportResult(render(found, findings, paths), [_plain(m) for _, m in found],
                        list(findings.variables.values()), list(findings.notes))


def unique_name(hint: str, taken: set[str]) -> str:
    """`MyFunction-MySqsEvent` → `my-function-my-sqs-event`, valid and not yet taken."""
    words = [w.lower() for w in _WORDS.findall(hint)]
    base = "-".join(words)[:MAX_NAME].strip("-") or "mapping"
    name, n = base, 2
    while name in taken:
        suffix = f"-{n}"
        name, n = base[:MAX_NAME - len(suffix)] + suffix, n + 1
    return name


def _plain(value: Any) -> Any:
    """The data without comment wrappers (what loading the YAML gives back)."""
    if isinstance(value, Commented):
        return _plain(value.value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
