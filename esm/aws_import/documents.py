"""Find the event source mappings in one document, whatever its kind.

- a CloudFormation / SAM template (`Resources`): `AWS::Lambda::EventSourceMapping`
  resources and the `Events` of `AWS::Serverless::Function` of types SQS, Kinesis,
  DynamoDB, MSK, SelfManagedKafka and MQ;
- `aws lambda list-event-source-mappings` output (`{"EventSourceMappings": [...]}`);
- one mapping: `get-event-source-mapping` output or `create-event-source-mapping
  --cli-input-json` input.

Each becomes an `AwsMapping` whose `params` use CreateEventSourceMapping's names: SAM's
`Queue`/`Stream`/`Broker` become `EventSourceArn`, CloudFormation's
`Endpoints.KafkaBootstrapServers` becomes the API's `KAFKA_BOOTSTRAP_SERVERS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from esm.aws_import.intrinsics import Resolver
from esm.aws_import.variables import Findings, escape

SAM_KINDS = {"SQS": "sqs", "Kinesis": "kinesis", "DynamoDB": "dynamodb", "MSK": "msk",
             "SelfManagedKafka": "kafka", "MQ": "mq"}
_UNSUPPORTED = {"DocumentDB": "esm has no DocumentDB source"}
_SAM_SOURCE = {"Queue": "EventSourceArn", "Stream": "EventSourceArn", "Broker": "EventSourceArn",
               "KmsKeyArn": "KMSKeyArn"}
_API_FIELDS = ("EventSourceArn", "FunctionName", "FunctionArn", "SelfManagedEventSource")


class NotAMappingDocument(ValueError):
    """The document holds nothing `esm import` reads."""


@dataclass(frozen=True, slots=True)
class FunctionInfo:
    """The invoked function: its name (text or Symbol) and what a template says of it."""

    name: Any
    logical_id: str | None = None
    handler: str | None = None
    runtime: str | None = None
    timeout: Any = None


@dataclass(frozen=True, slots=True)
class AwsMapping:
    where: str  # "FILE: Resources.Fn.Events.Ev", prefixed to every note about it
    name: str  # suggested mapping name, before it is made valid and unique
    kind: str | None  # sqs, kinesis, dynamodb, msk, kafka, mq; None: tell from the ARN
    params: dict[str, Any]
    function: FunctionInfo
    resolver: Resolver | None = None
    source_origin: str | None = None  # logical ID behind EventSourceArn, for --endpoint


def find_mappings(document: Any, file: str, findings: Findings) -> list[AwsMapping]:
    if isinstance(document, dict) and isinstance(document.get("Resources"), dict):
        return _from_template(document, file, findings)
    if isinstance(document, dict) and isinstance(document.get("EventSourceMappings"), list):
        return [_from_api(item, f"{file}: EventSourceMappings[{i}]")
                for i, item in enumerate(document["EventSourceMappings"])]
    if isinstance(document, dict) and any(k in document for k in _API_FIELDS):
        return [_from_api(document, file)]
    raise NotAMappingDocument(
        f"{file}: neither a CloudFormation/SAM template (no Resources) nor the JSON of "
        "create-event-source-mapping / get-event-source-mapping / list-event-source-mappings")


def _from_api(item: Any, where: str) -> AwsMapping:
    if not isinstance(item, dict):
        raise NotAMappingDocument(f"{where}: must be a JSON object")
    params = _escaped(item)  # JSON has no intrinsics, but a literal ${ must stay literal
    name = params.get("FunctionName") or params.get("FunctionArn") or "function"
    return AwsMapping(where, _api_name(params), None, params, FunctionInfo(name))


def _escaped(value: Any) -> Any:
    if isinstance(value, str):
        return escape(value)
    if isinstance(value, list):
        return [_escaped(v) for v in value]
    if isinstance(value, dict):
        return {k: _escaped(v) for k, v in value.items()}
    return value


def _api_name(params: dict[str, Any]) -> str:
    from esm.aws_import.arns import function_name, parse_arn, resource_name

    fn = function_name(str(params.get("FunctionName") or params.get("FunctionArn") or "fn"))
    arn = parse_arn(params.get("EventSourceArn"))
    topics = params.get("Topics")
    tail = resource_name(arn) if arn else (topics[0] if isinstance(topics, list) and topics
                                            else params.get("UUID", "source"))
    return f"{fn}-{tail}"


def _from_template(template: dict[str, Any], file: str,
                   findings: Findings) -> list[AwsMapping]:
    resolver = Resolver(template, findings, file)
    found: list[AwsMapping] = []
    for logical_id, resource in resolver.resources.items():
        if not isinstance(resource, dict):
            continue
        kind = resource.get("Type")
        where = f"{file}: Resources.{logical_id}"
        if kind == "AWS::Lambda::EventSourceMapping":
            found.append(_cfn_mapping(logical_id, resource, where, resolver))
        elif kind == "AWS::Serverless::Function":
            found += _sam_events(logical_id, resource, where, resolver, template)
    return found


def _cfn_mapping(logical_id: str, resource: dict[str, Any], where: str,
                 resolver: Resolver) -> AwsMapping:
    raw = resource.get("Properties") if isinstance(resource.get("Properties"), dict) else {}
    params = resolver.resolve(_api_spelling(dict(raw or {})))
    function = _function_of(raw.get("FunctionName") if raw else None, params, resolver)
    return AwsMapping(f"{where}.Properties", logical_id, None, params, function, resolver,
                      _origin(raw.get("EventSourceArn") if raw else None))


def _sam_events(logical_id: str, resource: dict[str, Any], where: str, resolver: Resolver,
                template: dict[str, Any]) -> list[AwsMapping]:
    props = _function_properties(resource, template)
    function = FunctionInfo(
        name=resolver.resolve(props["FunctionName"]) if "FunctionName" in props
        else resolver.resolve({"Ref": logical_id}),
        logical_id=logical_id, handler=_text(props.get("Handler")),
        runtime=_text(props.get("Runtime")), timeout=resolver.resolve(props.get("Timeout")))
    events = props.get("Events") or {}
    if not isinstance(events, dict):
        resolver.findings.note(f"{where}.Properties.Events", "not a mapping of event names "
                                                             "to events: nothing imported")
        events = {}
    found = []
    for event_name, event in events.items():
        at = f"{where}.Properties.Events.{event_name}"
        kind = SAM_KINDS.get(str(event.get("Type"))) if isinstance(event, dict) else None
        if kind is None:
            event_type = event.get("Type") if isinstance(event, dict) else None
            resolver.findings.note(at, _UNSUPPORTED.get(
                str(event_type), f"event of type {event_type} is not an event source mapping"
            ) + ": not imported")
            continue
        raw = event.get("Properties") if isinstance(event.get("Properties"), dict) else {}
        params = resolver.resolve(_sam_to_api(kind, dict(raw or {})))
        origin = _origin(next((raw[k] for k in ("Queue", "Stream", "Broker") if k in raw), None))
        found.append(AwsMapping(f"{at}.Properties", f"{logical_id}-{event_name}", kind,
                                params, function, resolver, origin))
    return found


def _function_properties(resource: dict[str, Any], template: dict[str, Any]) -> dict[str, Any]:
    """The function's properties over SAM's `Globals.Function` defaults."""
    globals_ = template.get("Globals")
    defaults = globals_.get("Function") if isinstance(globals_, dict) else None
    props = resource.get("Properties")
    return {**(defaults if isinstance(defaults, dict) else {}),
            **(props if isinstance(props, dict) else {})}


def _sam_to_api(kind: str, raw: dict[str, Any]) -> dict[str, Any]:
    params = {_SAM_SOURCE.get(k, k): v for k, v in raw.items()}
    if "KafkaBootstrapServers" in params:
        servers = params.pop("KafkaBootstrapServers")
        params["SelfManagedEventSource"] = {"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": servers}}
    if "ConsumerGroupId" in params:
        config = ("SelfManagedKafkaEventSourceConfig" if kind == "kafka"
                  else "AmazonManagedKafkaEventSourceConfig")
        params[config] = {"ConsumerGroupId": params.pop("ConsumerGroupId")}
    return params


def _api_spelling(raw: dict[str, Any]) -> dict[str, Any]:
    """CloudFormation's few spellings that differ from the API's."""
    if "KmsKeyArn" in raw:
        raw["KMSKeyArn"] = raw.pop("KmsKeyArn")
    source = raw.get("SelfManagedEventSource")
    if not isinstance(source, dict):
        return raw
    endpoints = source.get("Endpoints")
    if isinstance(endpoints, dict) and "KafkaBootstrapServers" in endpoints:
        raw["SelfManagedEventSource"] = {**source, "Endpoints": {
            "KAFKA_BOOTSTRAP_SERVERS": endpoints["KafkaBootstrapServers"]}}
    return raw


def _function_of(raw: Any, params: dict[str, Any], resolver: Resolver) -> FunctionInfo:
    """A CloudFormation mapping's function, with what its resource in the template says."""
    logical_id = _origin(raw)
    resource = resolver.resources.get(logical_id or "")
    props = resource.get("Properties") if isinstance(resource, dict) else None
    props = props if isinstance(props, dict) else {}
    return FunctionInfo(params.get("FunctionName"), logical_id, _text(props.get("Handler")),
                        _text(props.get("Runtime")), resolver.resolve(props.get("Timeout")))


def _origin(raw: Any) -> str | None:
    """The logical ID a `Ref` / `GetAtt` names, if the value is one."""
    if isinstance(raw, dict) and len(raw) == 1:
        (name, argument), = raw.items()
        if name == "Ref" and isinstance(argument, str):
            return argument
        if name == "Fn::GetAtt":
            target = argument.split(".")[0] if isinstance(argument, str) else (
                argument[0] if isinstance(argument, list) and argument else None)
            return target if isinstance(target, str) else None
    return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
