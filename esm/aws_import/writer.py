"""Write the imported mappings as esm YAML, with comments.

The file starts with what to set: every `${VARIABLE}` with what it stands for and an
example, then the environment variables named by `password_env` keys. Each mapping is
preceded by where it came from; each value holding a variable, or wrapped in `Commented`,
carries an end-of-line comment. Scalars are written by PyYAML itself, so quoting is
always right (`yaml.safe_load` of the output gives back the data).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from esm.aws_import.translate.translation import Commented
from esm.aws_import.variables import Findings

_REFERENCE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)")


def render(mappings: list[tuple[str, dict[str, Any]]], findings: Findings,
           files: list[str]) -> str:
    lines = [f"# Written by `esm import` from {', '.join(files)}."]
    lines += _variables_header(findings)
    lines.append("mappings:")
    for where, mapping in mappings:
        lines.append(f"  # from {_one_line(where)}")
        lines += _mapping_lines(mapping, 4, "  - ", findings)
    return "\n".join(lines) + "\n"


def _variables_header(findings: Findings) -> list[str]:
    substituted = [v for v in findings.variables.values() if not v.secret]
    secrets = [v for v in findings.variables.values() if v.secret]
    lines: list[str] = []
    if substituted:
        lines.append("# Set these environment variables; esm substitutes ${NAME} when it "
                     "loads this file:")
        lines += [f"#   {v.name}: {_one_line(v.meaning)} (e.g. {v.example})"
                  for v in substituted]
    if secrets:
        lines.append("# and these secrets, read from the environment by name (never written "
                     "in the file):")
        lines += [f"#   {v.name}: {_one_line(v.meaning)}" for v in secrets]
    return lines


def _mapping_lines(data: dict[str, Any], indent: int, first: str | None,
                   findings: Findings) -> list[str]:
    lines: list[str] = []
    pad = " " * indent
    for index, (key, raw) in enumerate(data.items()):
        prefix = first if index == 0 and first is not None else pad
        value, comment = (raw.value, raw.comment) if isinstance(raw, Commented) else (raw, "")
        if isinstance(value, dict) and value:
            lines.append(f"{prefix}{key}:{_comment(comment)}")
            lines += _mapping_lines(value, indent + 2, None, findings)
        elif isinstance(value, list) and any(isinstance(v, dict) for v in value):
            lines.append(f"{prefix}{key}:{_comment(comment)}")
            for item in value:
                lines += _mapping_lines(item, indent + 4, f"{pad}  - ", findings)
        else:
            text = scalar(value)
            notes = [comment] if comment else []
            notes += _variable_notes(value, findings)
            lines.append(f"{prefix}{key}: {text}{_comment('; '.join(notes))}")
    return lines


def scalar(value: Any) -> str:
    """One value (or a list of scalars) in YAML flow form, quoted as PyYAML sees fit."""
    if isinstance(value, Commented):
        value = value.value
    if isinstance(value, list):
        value = [v.value if isinstance(v, Commented) else v for v in value]
    style = '"' if isinstance(value, str) and "\n" in value else None
    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 30, allow_unicode=True,
                          default_style=style)
    return text.removesuffix("\n...\n").rstrip("\n")


def _variable_notes(value: Any, findings: Findings) -> list[str]:
    values = value if isinstance(value, list) else [value]
    names = [n for v in values if isinstance(v, str) for n in _REFERENCE.findall(v)]
    names += [v for v in values if isinstance(v, str) and v in findings.variables]  # *_env
    known = [findings.variables[n] for n in dict.fromkeys(names) if n in findings.variables]
    return [f"{v.name}: {_one_line(v.meaning)}" for v in known]


def _comment(text: str) -> str:
    return f"  # {_one_line(text)}" if text else ""


def _one_line(text: str) -> str:
    return " ".join(str(text).split())
