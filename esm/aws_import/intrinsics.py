"""Evaluate CloudFormation intrinsic functions as far as a template alone allows.

`Resolver.resolve(value)` returns plain data where every string is esm configuration text
(a literal `${` escaped as `$${`). What the template cannot tell, such as an attribute only
the deployed stack has (`!GetAtt Queue.Arn` without a `QueueName`), a parameter without a
`Default`, an `!ImportValue`, becomes a `Symbol`; a symbol inside a string (`!Sub`,
`!Join`) becomes a `${VARIABLE}` reference there. Parameters with a `Default` take it.
Strings built from a template resource remember its logical ID (`Text.origin`), so
`--endpoint LogicalId=URL` can name it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from esm.aws_import.variables import Findings, env_name, escape

NO_VALUE = object()  # AWS::NoValue: the property is removed
_SUB_REFERENCE = re.compile(r"\$\{([^}]*)\}")
_PSEUDO = {
    "AWS::Region": ("the stack's AWS region", "us-east-1"),
    "AWS::AccountId": ("the stack's AWS account ID", "123456789012"),
    "AWS::StackName": ("the stack's name", "my-stack"),
    "AWS::StackId": ("the stack's ID", "my-stack-id"),
}
_LITERAL_PSEUDO = {"AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"}
_REGION, _ACCOUNT = "${AWS_REGION}", "${AWS_ACCOUNT_ID}"

# Resource type → name property, and what Ref / GetAtt return, built from that name.
_NAMED: dict[str, tuple[str, dict[str, str]]] = {
    "AWS::SQS::Queue": ("QueueName", {
        "Ref": f"https://sqs.{_REGION}.amazonaws.com/{_ACCOUNT}/{{}}",
        "Arn": f"arn:aws:sqs:{_REGION}:{_ACCOUNT}:{{}}", "QueueName": "{}"}),
    "AWS::Kinesis::Stream": ("Name", {
        "Ref": "{}", "Arn": f"arn:aws:kinesis:{_REGION}:{_ACCOUNT}:stream/{{}}"}),
    "AWS::SNS::Topic": ("TopicName", {
        "Ref": f"arn:aws:sns:{_REGION}:{_ACCOUNT}:{{}}",
        "TopicArn": f"arn:aws:sns:{_REGION}:{_ACCOUNT}:{{}}", "TopicName": "{}"}),
    "AWS::S3::Bucket": ("BucketName", {"Ref": "{}", "Arn": "arn:aws:s3:::{}"}),
    "AWS::Lambda::Function": ("FunctionName", {
        "Ref": "{}", "Arn": f"arn:aws:lambda:{_REGION}:{_ACCOUNT}:function:{{}}"}),
    "AWS::Serverless::Function": ("FunctionName", {
        "Ref": "{}", "Arn": f"arn:aws:lambda:{_REGION}:{_ACCOUNT}:function:{{}}"}),
}
# What `Ref` of a resource returns, for variable names and comments.
REF_MEANS = {
    "AWS::SQS::Queue": ("URL", "queue URL"), "AWS::Kinesis::Stream": ("NAME", "stream name"),
    "AWS::DynamoDB::Table": ("NAME", "table name"), "AWS::SNS::Topic": ("ARN", "topic ARN"),
    "AWS::S3::Bucket": ("NAME", "bucket name"), "AWS::MSK::Cluster": ("ARN", "cluster ARN"),
    "AWS::Lambda::Function": ("NAME", "function name"),
    "AWS::Serverless::Function": ("NAME", "function name"),
    "AWS::AmazonMQ::Broker": ("ID", "broker ID"),
}


class Text(str):
    """Configuration text that came from a template resource (its logical ID in `origin`)."""

    origin: str | None = None


@dataclass(frozen=True, slots=True)
class Symbol:
    """A value the template cannot give. `key` is the logical ID, parameter or export name;
    `attribute` what was asked of it ("Ref", "Arn", "StreamArn", "ImportValue", ...)."""

    key: str
    attribute: str
    resource_type: str | None
    description: str

    def stem(self) -> str:
        """The variable name this symbol suggests: MY_QUEUE_ARN, TABLE_STREAM_ARN."""
        if self.attribute == "Ref":
            suffix = REF_MEANS.get(self.resource_type or "", ("", ""))[0]
            return env_name(self.key, suffix)
        return env_name(self.key, self.attribute)


def _with_origin(text: str, origin: str) -> Text:
    value = Text(text)
    value.origin = origin
    return value


class Resolver:
    """Evaluates the intrinsics of one template; symbols in strings become variables."""

    def __init__(self, template: dict[str, Any], findings: Findings, file: str) -> None:
        self.parameters = _section(template, "Parameters")
        self.resources = _section(template, "Resources")
        self.mappings = _section(template, "Mappings")
        self.conditions = _section(template, "Conditions")
        self.findings = findings
        self.file = file
        self._functions: dict[str, Callable[[Any], Any]] = {
            "Ref": self._ref, "Fn::GetAtt": self._get_att, "Fn::Sub": self._sub,
            "Fn::Join": self._join, "Fn::Select": self._select, "Fn::Split": self._split,
            "Fn::FindInMap": self._find_in_map, "Fn::If": self._if,
            "Fn::ImportValue": self._import_value}

    def resolve(self, value: Any) -> Any:
        if isinstance(value, str):
            return escape(value)
        if isinstance(value, list):
            items = [self.resolve(v) for v in value]
            return [v for v in items if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (name, argument), = value.items()
            if name in self._functions:
                return self._functions[name](argument)
            if name.startswith("Fn::"):
                return Symbol(name, name[4:], None, name)
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def embed(self, value: Any, example: str = "value") -> str:
        """`value` as text; a symbol becomes a `${VARIABLE}` reference."""
        if isinstance(value, Symbol):
            return self.findings.variable(value.stem(), value.description, example).reference
        if isinstance(value, bool):
            return str(value).lower()
        return str(value)

    # ---- Ref and GetAtt -----------------------------------------------------------------

    def _ref(self, name: Any) -> Any:
        if not isinstance(name, str):
            return Symbol("Ref", "Ref", None, f"Ref of {name!r}")
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in _LITERAL_PSEUDO:
            return _LITERAL_PSEUDO[name]
        if name in _PSEUDO:
            meaning, example = _PSEUDO[name]
            return self.findings.variable(name, f"{meaning} ({name})", example).reference
        if name in self.parameters:
            return self._parameter(name)
        return self._attribute(name, "Ref")

    def _parameter(self, name: str) -> Any:
        spec = self.parameters[name] if isinstance(self.parameters[name], dict) else {}
        kind = spec.get("Type", "String")
        if "Default" not in spec:
            about = f": {spec['Description']}" if spec.get("Description") else ""
            return Symbol(name, "Ref", f"parameter ({kind})",
                          f"template parameter {name} ({kind}, no default){about}")
        default = spec["Default"]
        if kind == "Number" and isinstance(default, str):
            try:
                return int(default)
            except ValueError:
                return float(default)
        return escape(default) if isinstance(default, str) else default

    def _get_att(self, argument: Any) -> Any:
        if isinstance(argument, str):
            argument = argument.split(".", 1)
        if not (isinstance(argument, list) and len(argument) == 2
                and all(isinstance(a, str) for a in argument)):
            return Symbol("GetAtt", "GetAtt", None, f"Fn::GetAtt {argument!r}")
        return self._attribute(argument[0], argument[1])

    def _attribute(self, logical_id: str, attribute: str) -> Any:
        resource = self.resources.get(logical_id)
        kind = resource.get("Type") if isinstance(resource, dict) else None
        named = _NAMED.get(str(kind))
        if named and isinstance(resource, dict) and attribute in named[1]:
            name = self.resolve((resource.get("Properties") or {}).get(named[0]))
            if isinstance(name, str) and name:
                text = named[1][attribute].replace("{}", name)
                if "${AWS_" in text:  # declare the pseudo parameters it uses
                    self._ref("AWS::Region")
                    self._ref("AWS::AccountId")
                return _with_origin(text, logical_id)
        what = f"!Ref {logical_id}" if attribute == "Ref" else f"!GetAtt {logical_id}.{attribute}"
        where = f" ({kind})" if kind else " (not declared in the template)"
        return Symbol(logical_id, attribute, kind, f"{what}{where}")

    # ---- string functions ---------------------------------------------------------------

    def _sub(self, argument: Any) -> Any:
        text, names = (argument, {}) if isinstance(argument, str) else (
            (argument + [{}])[:2] if isinstance(argument, list) else (None, {}))
        if not isinstance(text, str) or not isinstance(names, dict):
            return Symbol("Sub", "Sub", None, f"Fn::Sub {argument!r}")
        parts = _SUB_REFERENCE.split(text)  # literal, name, literal, name, ..., literal
        return "".join(escape(part) if i % 2 == 0 else self._sub_piece(part, names)
                       for i, part in enumerate(parts))

    def _sub_piece(self, name: str, names: dict[str, Any]) -> str:
        if name.startswith("!"):
            return "$${" + name[1:] + "}"  # ${!Literal} is the literal text ${Literal}
        if name in names:
            return self.embed(self.resolve(names[name]))
        if "." in name and name not in self.parameters:
            return self.embed(self._get_att(name))
        return self.embed(self._ref(name))

    def _join(self, argument: Any) -> Any:
        if not (isinstance(argument, list) and len(argument) == 2):
            return Symbol("Join", "Join", None, f"Fn::Join {argument!r}")
        delimiter, items = self.resolve(argument[0]), self.resolve(argument[1])
        if isinstance(items, Symbol) or not isinstance(items, list):
            return items if isinstance(items, Symbol) else Symbol(
                "Join", "Join", None, f"Fn::Join {argument!r}")
        return self.embed(delimiter).join(self.embed(item) for item in items)

    def _select(self, argument: Any) -> Any:
        if isinstance(argument, list) and len(argument) == 2:
            index, items = self.resolve(argument[0]), self.resolve(argument[1])
            try:
                return items[int(index)]
            except (TypeError, ValueError, IndexError, KeyError):
                pass
        return Symbol("Select", "Select", None, f"Fn::Select {argument!r}")

    def _split(self, argument: Any) -> Any:
        if isinstance(argument, list) and len(argument) == 2:
            delimiter, text = self.resolve(argument[0]), self.resolve(argument[1])
            if isinstance(delimiter, str) and isinstance(text, str) and "${" not in text:
                return text.split(delimiter)
        return Symbol("Split", "Split", None, f"Fn::Split {argument!r}")

    def _find_in_map(self, argument: Any) -> Any:
        keys = [self.resolve(a) for a in argument] if isinstance(argument, list) else []
        value: Any = self.mappings
        for key in keys:
            value = value.get(key) if isinstance(value, dict) and isinstance(key, str) else None
        if len(keys) == 3 and value is not None:
            return self.resolve(value)
        return Symbol("FindInMap", "FindInMap", None, f"Fn::FindInMap {argument!r}")

    def _import_value(self, argument: Any) -> Any:
        name = self.resolve(argument)
        key = name if isinstance(name, str) else "ImportValue"
        return Symbol(key, "ImportValue", "export",
                      f"!ImportValue {self.embed(name)} (another stack's export)")

    def _if(self, argument: Any) -> Any:
        if not (isinstance(argument, list) and len(argument) == 3):
            return Symbol("If", "If", None, f"Fn::If {argument!r}")
        chosen = self._condition(argument[0])
        if chosen is None:
            return Symbol(str(argument[0]), "If", "condition",
                          f"Fn::If on condition {argument[0]} (depends on the deployment)")
        return self.resolve(argument[1] if chosen else argument[2])

    def _condition(self, name: Any) -> bool | None:
        """The condition's value when the template alone decides it, else None."""
        from esm.aws_import.conditions import evaluate

        return evaluate(self, self.conditions.get(name) if isinstance(name, str) else None)


def _section(template: dict[str, Any], name: str) -> dict[str, Any]:
    section = template.get(name)
    return section if isinstance(section, dict) else {}
