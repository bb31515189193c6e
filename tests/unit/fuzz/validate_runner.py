"""Run `esm validate` in-process on a document and check the shape of what it prints."""

from __future__ import annotations

import contextlib
import io
import os
import re
import tempfile
from dataclasses import dataclass

import yaml

from esm import cli
from tests.unit.fuzz.config_documents import Path
from tests.unit.fuzz.json_values import production_stack


@dataclass(frozen=True)
class Validation:
    exit_code: int
    stdout: str
    stderr: str
    file: str

    @property
    def problems(self) -> list[str]:
        """The problem lines, each `FILE: message` with the file prefix removed."""
        return [line[len(f"  {self.file}:"):].strip() for line in self.stderr.splitlines()[1:]]


def run_validate(content: object | bytes | str) -> Validation:
    """`esm validate FILE` on `content` (data is dumped as YAML; text and bytes are written
    as they are). Any exception escapes, failing the test with its traceback."""
    if isinstance(content, bytes):
        raw = content
    elif isinstance(content, str):
        raw = content.encode("utf-8", "surrogatepass")
    else:
        raw = yaml.safe_dump(content, allow_unicode=False).encode()
    with tempfile.TemporaryDirectory() as directory:
        file = os.path.join(directory, "esm.yaml")
        with open(file, "wb") as stream:
            stream.write(raw)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
                production_stack():  # the stack `esm validate` has, not Hypothesis's
            code = cli.main(["validate", file])
    return Validation(code, out.getvalue(), err.getvalue(), file)


_HEADER = re.compile(r"esm: invalid configuration \((\d+) problem\(s\)\):")


def assert_accepted_or_refused_clearly(result: Validation) -> None:
    """Exit 0 with `ok: ...`, or exit 2 with one `  FILE: problem` line per problem."""
    assert result.exit_code in (0, 2), result
    if result.exit_code == 0:
        assert result.stdout.startswith("ok: ") and not result.stderr, result
        return
    lines = result.stderr.splitlines()
    header = _HEADER.fullmatch(lines[0]) if lines else None
    assert header, result.stderr[:2000]
    assert len(lines) == int(header.group(1)) + 1, result.stderr[:2000]  # one line each
    for line in lines[1:]:
        assert line.startswith(f"  {result.file}: ") or re.match(
            rf"  {re.escape(result.file)}:\d+:\d+: ", line), line[:500]
        assert line[len(f"  {result.file}: "):].strip(), line


def dotted(path: Path) -> str:
    """("mappings", 0, "source", "url") → "mappings[0].source.url", as messages write it."""
    text = ""
    for key in path:
        text = f"{text}[{key}]" if isinstance(key, int) else f"{text}.{key}" if text else key
    return text
