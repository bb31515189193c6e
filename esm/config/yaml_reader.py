"""Read one configuration file as YAML data, strictly: `read_yaml(file) -> (data, problems)`.

Safe loading only (no Python objects), duplicate keys refused, and every way a file can be
unreadable or malformed reported as one line `FILE[:LINE:COLUMN]: problem`, never raised.
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_DEPTH = 100
"""Nesting deeper than this is refused: PyYAML's composer recurses once per level and
would die of RecursionError near 300, and no configuration needs a tenth of it."""
MAX_VALUES = 100_000
"""A document expanding to more values than this (counting each use of an alias in full)
is refused: a few lines of anchors doubling each other ("billion laughs") would otherwise
take the loader and every walk over the data minutes and gigabytes."""


_MAX_INT_BITS = 14_000  # about 4200 decimal digits, below Python's int-to-text limit


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys, which plain YAML loading silently merges,
    nesting deeper than MAX_DEPTH, an alias inside the node it names (a cycle, which every
    walk over the data would follow forever), and expansion past MAX_VALUES."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._open: list[str | None] = []  # the anchors of the nodes being composed
        self._sizes: dict[int, int] = {}  # id(node) → values it expands to

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]  # untyped in the stubs
        problem = None
        if len(self._open) >= MAX_DEPTH:
            problem = f"nested deeper than {MAX_DEPTH} levels"
        elif isinstance(event, yaml.AliasEvent) and event.anchor in self._open:
            problem = f"alias *{event.anchor} refers to a node that encloses it"
        if problem:
            raise yaml.composer.ComposerError(None, None, problem, event.start_mark)
        self._open.append(getattr(event, "anchor", None))
        try:
            node = super().compose_node(parent, index)
        finally:
            self._open.pop()
        if node is not None and self._expanded_size(node) > MAX_VALUES:
            raise yaml.composer.ComposerError(
                None, None, f"expands to more than {MAX_VALUES} values through aliases",
                node.start_mark)
        return node

    def _expanded_size(self, node: yaml.Node) -> int:
        """Values `node` stands for once aliases are expanded; its children were composed,
        and so sized, before it (an alias is the anchored node itself: sized already)."""
        size = self._sizes.get(id(node))
        if size is None:
            children: list[yaml.Node] = []
            if isinstance(node, yaml.SequenceNode):
                children = list(node.value)
            elif isinstance(node, yaml.MappingNode):
                children = [part for pair in node.value for part in pair]
            size = 1 + sum(self._sizes.get(id(child), 1) for child in children)
            self._sizes[id(node)] = size
        return size

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Any:
        if not isinstance(node, yaml.MappingNode):  # `!!set [1]`: PyYAML's own error
            return super().construct_mapping(node, deep)
        seen: set[object] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            if isinstance(key_node, yaml.ScalarNode):
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key_node.value!r}", key_node.start_mark)
                seen.add(key_node.value)
        return super().construct_mapping(node, deep)

    def scan_yaml_directive_number(self, start_mark: yaml.Mark) -> int:
        """`%YAML 1.<5000 digits>`: PyYAML's scanner calls int() on the digits, which
        raises ValueError past Python's 4300-digit limit; a ScannerError instead."""
        try:
            number: int = super().scan_yaml_directive_number(start_mark)
        except ValueError:
            raise yaml.scanner.ScannerError(
                None, None, "a %YAML version number of more than 4300 digits",
                start_mark) from None
        return number

    def scan_flow_scalar(self, style: str) -> yaml.ScalarToken:
        """A quoted scalar; an escape past U+10FFFF (`"\\UFFFFFFFF"`) made PyYAML's
        chr() raise ValueError or OverflowError: a ScannerError at the scalar instead."""
        start_mark = self.get_mark()
        try:
            token: yaml.ScalarToken = super().scan_flow_scalar(style)
        except (ValueError, OverflowError):
            raise yaml.scanner.ScannerError(
                None, None, "an escape names no character (beyond \\U0010FFFF)",
                start_mark) from None
        return token

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        """An int with more digits than Python turns into text (4300; hex, octal and base
        60 have no such limit when read) is refused here: every message naming it would
        raise ValueError later."""
        value: int = super().construct_yaml_int(node)
        if value.bit_length() > _MAX_INT_BITS:
            raise ValueError("an integer too long to print")
        return value

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """PyYAML's constructors raise ValueError, TypeError, KeyError or AttributeError on
        a value they cannot build (`!!int x`, `2024-13-45`, an int of 5000 digits, `!!bool
        maybe`): each becomes a ConstructorError at the node. The value is not echoed."""
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, KeyError, AttributeError):
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            hint = "" if _tag_written(node) else " (quote it to make it a string)"
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read this value as {tag}{hint}", node.start_mark) from None


# PyYAML looks constructors up in a per-class table, not by method name.
_StrictLoader.add_constructor("tag:yaml.org,2002:int", _StrictLoader.construct_yaml_int)


def _tag_written(node: yaml.Node) -> bool:
    """Whether the node's tag was written (`!!int x`) rather than implied by its look
    (`2024-13-45` reads as a date). A tagged node's mark points at its tag."""
    mark = node.start_mark
    return bool(mark.buffer) and str(mark.buffer)[mark.pointer:mark.pointer + 1] == "!"


def read_yaml(file: str) -> tuple[object, list[str]]:
    """The parsed document, or `FILE:LINE:COLUMN: problem`. The offending line's text is not
    echoed, since it may hold a secret."""
    try:
        with open(file, encoding="utf-8") as stream:
            text = stream.read()
    except OSError as exc:
        return None, [f"{file}: cannot read: {exc.strerror}"]
    except UnicodeDecodeError as exc:
        return None, [f"{file}: not UTF-8 text (byte {exc.start})"]
    try:
        return yaml.load(text, Loader=_StrictLoader), []  # noqa: S506 (a SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark else file
        context = f" ({exc.context})" if exc.context else ""
        return None, [f"{where}: YAML syntax error: {exc.problem}{context}"]
    except yaml.reader.ReaderError as exc:  # a character YAML forbids; no mark, a position
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - text.rfind("\n", 0, exc.position)
        return None, [f"{file}:{line}:{column}: YAML syntax error: unacceptable character "
                      f"#x{exc.character:04x}: {exc.reason}"]
    except yaml.YAMLError as exc:  # one line: the report prints one problem a line
        return None, [f"{file}: YAML error: {' '.join(str(exc).split())}"]
