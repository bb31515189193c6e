"""`${VARIABLES}` for what the importer cannot resolve, and the notes it prints.

A `Variable` stands for a value only the deployed stack knows (a queue URL, a stream ARN,
a template parameter without a default). Its name is a valid environment variable name,
its `meaning` becomes the YAML comment, and its `example` shows the expected form (the
tests validate the output with every variable set to its example).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


@dataclass(frozen=True, slots=True)
class Variable:
    name: str
    meaning: str
    example: str
    secret: bool = False  # named by a *_env key, never substituted into the file

    @property
    def reference(self) -> str:
        return f"${{{self.name}}}"


@dataclass(frozen=True, slots=True)
class Note:
    """A property not carried over (or carried with a caveat), and where it was."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass(slots=True)
class Findings:
    """What one import run found besides mappings: variables and notes, in order."""

    variables: dict[str, Variable] = field(default_factory=dict)
    notes: list[Note] = field(default_factory=list)

    def variable(self, name: str, meaning: str, example: str, *,
                 secret: bool = False) -> Variable:
        """The variable `name` (made a valid env name); the first meaning given wins."""
        name = env_name(name)
        known = self.variables.get(name)
        if known is None:
            known = Variable(name, meaning, example, secret)
            self.variables[name] = known
        return known

    def note(self, where: str, message: str) -> None:
        self.notes.append(Note(where, message))


def env_name(*parts: str) -> str:
    """`MySqsQueue_QUEUE_URL` → `MY_SQS_QUEUE_URL`: the words of the parts, a run of words
    said twice in a row said once; always a valid environment variable name."""
    words: list[str] = []
    for word in (w.upper() for part in parts for w in _WORD.findall(part)):
        words.append(word)
        for k in range(1, len(words) // 2 + 1):
            if words[-k:] == words[-2 * k:-k]:
                del words[-k:]
                break
    name = "_".join(words) or "VALUE"
    return f"V_{name}" if name[0].isdigit() else name


def escape(text: str) -> str:
    """A literal string as esm config text: `${` would be read as a reference."""
    return text.replace("${", "$${")
