"""Read a CloudFormation / SAM template or an AWS CLI JSON document into plain data.

YAML templates use short tags for intrinsic functions (`!Ref X`, `!GetAtt A.B`, `!Sub ...`);
`TemplateLoader` turns each into the long form CloudFormation itself uses
(`{"Ref": "X"}`, `{"Fn::GetAtt": ["A", "B"]}`), so the rest of the importer sees one
shape whether the file was JSON, long-form YAML or short-form YAML. A file that cannot be
read raises `UnreadableFile` naming the file and, when known, the line and column.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

# Short tag → long form. Every intrinsic function and condition function CloudFormation has.
_FUNCTIONS = ("Base64", "Cidr", "FindInMap", "GetAtt", "GetAZs", "ImportValue", "Join",
              "Select", "Split", "Sub", "Transform", "And", "Equals", "If", "Not", "Or",
              "ToJsonString", "Length")


class UnreadableFile(Exception):
    """The file is not a readable template or JSON document; the message says where."""


class TemplateLoader(yaml.SafeLoader):
    """SafeLoader that knows CloudFormation's short intrinsic tags (and nothing unsafe)."""


def _long_form(name: str) -> Any:
    def construct(loader: TemplateLoader, node: yaml.Node) -> dict[str, Any]:
        return {name: _node_value(loader, node)}
    return construct


def _node_value(loader: TemplateLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]


def _get_att(loader: TemplateLoader, node: yaml.Node) -> dict[str, Any]:
    """`!GetAtt Res.Attr` (a string) and `!GetAtt [Res, Attr]` are the same thing."""
    value = _node_value(loader, node)
    if isinstance(value, str):
        resource, _, attribute = value.partition(".")
        value = [resource, attribute]
    return {"Fn::GetAtt": value}


def _register() -> None:
    TemplateLoader.add_constructor("!Ref", _long_form("Ref"))
    TemplateLoader.add_constructor("!Condition", _long_form("Condition"))
    TemplateLoader.add_constructor("!GetAtt", _get_att)
    for name in _FUNCTIONS:
        if name != "GetAtt":
            TemplateLoader.add_constructor(f"!{name}", _long_form(f"Fn::{name}"))


_register()


def read_document(path: str) -> Any:
    """The file's data: JSON when it parses as JSON, else YAML with intrinsic tags."""
    try:
        with open(path, encoding="utf-8") as stream:
            text = stream.read()
    except OSError as exc:
        raise UnreadableFile(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise UnreadableFile(f"{path}: not UTF-8 text (byte {exc.start})") from None
    if text.lstrip().startswith(("{", "[")):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise UnreadableFile(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: "
                                 f"{exc.msg}") from None
    return _yaml(text, path)


def _yaml(text: str, path: str) -> Any:
    try:
        return yaml.load(text, Loader=TemplateLoader)  # noqa: S506 (a SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
        context = f" ({exc.context})" if exc.context else ""
        raise UnreadableFile(f"{where}: invalid YAML: {exc.problem}{context}") from None
    except yaml.YAMLError as exc:
        raise UnreadableFile(f"{path}: invalid YAML: {exc}") from None
