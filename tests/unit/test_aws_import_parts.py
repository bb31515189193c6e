"""`esm import` parts: intrinsic functions, `--endpoint`, `--target`, and bad input (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from esm.aws_import.importer import import_files
from esm.aws_import.intrinsics import Resolver, Symbol
from esm.aws_import.template import read_document
from esm.aws_import.translate.translation import Options
from esm.aws_import.variables import Findings, env_name
from esm.cli import main
from tests.unit.aws_import_support import imported, mapping, notes

SQS_ARN = "arn:aws:sqs:us-west-2:012345678901:my-queue"
TEMPLATE = {
    "Parameters": {"Stage": {"Type": "String", "Default": "dev"},
                   "Size": {"Type": "Number", "Default": "25"},
                   "Secret": {"Type": "String"}},
    "Conditions": {"IsDev": {"Fn::Equals": [{"Ref": "Stage"}, "dev"]},
                   "InUsEast": {"Fn::Equals": [{"Ref": "AWS::Region"}, "us-east-1"]}},
    "Mappings": {"Sizes": {"dev": {"Batch": 7}}},
    "Resources": {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "jobs"}},
                  "Table": {"Type": "AWS::DynamoDB::Table"}},
}


def resolve(value: Any) -> tuple[Any, Findings]:
    findings = Findings()
    return Resolver(TEMPLATE, findings, "t.yaml").resolve(value), findings


def test_short_tags_load_as_the_long_form(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("A: !GetAtt Queue.Arn\nB: !Sub 'x-${Stage}'\nC: !Join [':', [a, !Ref B]]\n"
                    "D: !If [IsDev, 1, 2]\nE: !Select [0, !Split [',', 'a,b']]\n"
                    "F: !ImportValue shared\nG: !FindInMap [Sizes, dev, Batch]\n")
    assert read_document(str(path)) == {
        "A": {"Fn::GetAtt": ["Queue", "Arn"]}, "B": {"Fn::Sub": "x-${Stage}"},
        "C": {"Fn::Join": [":", ["a", {"Ref": "B"}]]}, "D": {"Fn::If": ["IsDev", 1, 2]},
        "E": {"Fn::Select": [0, {"Fn::Split": [",", "a,b"]}]},
        "F": {"Fn::ImportValue": "shared"}, "G": {"Fn::FindInMap": ["Sizes", "dev", "Batch"]}}


def test_parameters_mappings_conditions_and_string_functions_resolve() -> None:
    assert resolve({"Ref": "Stage"})[0] == "dev"
    assert resolve({"Ref": "Size"})[0] == 25
    assert resolve({"Fn::FindInMap": ["Sizes", {"Ref": "Stage"}, "Batch"]})[0] == 7
    assert resolve({"Fn::If": ["IsDev", "a", "b"]})[0] == "a"
    assert resolve({"Fn::Select": [1, {"Fn::Split": [",", "a,b,c"]}]})[0] == "b"
    assert resolve({"Fn::Sub": ["${A}-${Stage}", {"A": "x"}]})[0] == "x-dev"
    assert resolve({"Fn::Sub": "${!Literal}"})[0] == "$${Literal}"  # a literal ${ for esm
    assert resolve({"Fn::GetAtt": ["Queue", "Arn"]})[0] == (
        "arn:aws:sqs:${AWS_REGION}:${AWS_ACCOUNT_ID}:jobs")
    assert resolve("price ${x}")[0] == "price $${x}"  # template text is never substituted


def test_what_the_template_cannot_tell_becomes_a_symbol_or_an_explained_variable() -> None:
    secret, _ = resolve({"Ref": "Secret"})
    assert isinstance(secret, Symbol) and "no default" in secret.description
    stream, _ = resolve({"Fn::GetAtt": ["Table", "StreamArn"]})
    assert isinstance(stream, Symbol) and stream.stem() == "TABLE_STREAM_ARN"
    region_dependent, _ = resolve({"Fn::If": ["InUsEast", 1, 2]})
    assert isinstance(region_dependent, Symbol)
    text, findings = resolve({"Fn::Sub": "arn:${AWS::Partition}:sqs:${AWS::Region}:"
                                         "${AWS::AccountId}:${Table.StreamArn}"})
    assert text == "arn:aws:sqs:${AWS_REGION}:${AWS_ACCOUNT_ID}:${TABLE_STREAM_ARN}"
    assert "!GetAtt Table.StreamArn" in findings.variables["TABLE_STREAM_ARN"].meaning
    assert resolve({"Fn::Join": ["", ["a", {"Ref": "AWS::NoValue"}, "b"]]})[0] == "ab"


def test_variable_names_are_valid_environment_names() -> None:
    assert env_name("MySqsQueue", "QUEUE_URL") == "MY_SQS_QUEUE_URL"
    assert env_name("my-broker_BROKER_URL") == "MY_BROKER_URL"
    assert env_name("2fast") == "V_2_FAST"
    assert env_name("AWS::Region") == "AWS_REGION"


def test_endpoint_turns_a_queue_arn_into_a_local_queue() -> None:
    by_origin = imported("sam_sqs.yaml", endpoints={SQS_ARN: "http://127.0.0.1:9324"})
    assert mapping(by_origin, "orders-function-sqs-event")["source"] == {
        "type": "sqs", "queue_url": "http://127.0.0.1:9324/012345678901/my-queue",
        "endpoint_url": "http://127.0.0.1:9324", "region": "us-west-2"}
    by_logical_id = imported("sam_sqs.yaml", endpoints={
        "OrdersQueue": "http://localhost:9324/000000000000/orders"})
    assert mapping(by_logical_id, "orders-function-orders-queue-event")["source"] == {
        "type": "sqs", "queue_url": "http://localhost:9324/000000000000/orders",
        "endpoint_url": "http://localhost:9324"}


def test_endpoint_gives_msk_brokers_and_a_lambda_emulator() -> None:
    cluster = ("arn:aws:kafka:us-east-1:012345678012:cluster/exampleClusterName/"
               "abcdefab-1234-abcd-5678-cdef0123ab01-2")
    result = imported("sam_msk.yaml", endpoints={cluster: "127.0.0.1:9092,127.0.0.1:9093",
                                                 "KafkaFunction": "http://127.0.0.1:9001",
                                                 "unused-arn": "http://nowhere"})
    msk = mapping(result, "kafka-function-msk-event")
    assert msk["source"]["bootstrap_servers"] == ["127.0.0.1:9092", "127.0.0.1:9093"]
    assert msk["target"]["endpoint_url"] == "http://127.0.0.1:9001"
    assert any("--endpoint: unused-arn matched no ARN" in n for n in notes(result))


def test_python_target_takes_the_python_handler_or_names_a_variable() -> None:
    python = imported("sam_sqs.yaml", target="python")
    assert mapping(python, "orders-function-sqs-event")["target"] == {
        "type": "python", "handler": "app:lambda_handler", "timeout_seconds": 30}
    node = imported("sam_dynamodb.yaml", target="python")
    assert mapping(node, "table-function-ddb-event")["target"]["handler"] == (
        "${TABLE_FUNCTION_HANDLER}")
    chosen = imported("sam_dynamodb.yaml", target="python", handler="billing.handlers:handle")
    assert {m["target"]["handler"] for m in chosen.mappings} == {"billing.handlers:handle"}
    http = imported("cli_create_sqs.json", target="http", url="http://127.0.0.1:8080/invoke")
    assert http.mappings[0]["target"] == {"type": "http", "url": "http://127.0.0.1:8080/invoke"}


@pytest.mark.parametrize("text, expected", [
    ("Resources:\n  A: [unclosed\n", ":3:1: invalid YAML"),
    ("Resources:\n  A: !NotATag x\n", ":2:6: invalid YAML: could not determine a constructor"),
    ('{"EventSourceArn": }', ":1:20: invalid JSON"),
    ("Resources:\n  Q: {Type: 'AWS::SQS::Queue'}\n", ": no event source mappings found"),
    ("just: text\n", ": neither a CloudFormation/SAM template"),
])
def test_unreadable_input_exits_2_naming_the_file_and_where(
        text: str, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(text)
    assert main(["import", str(path), "-o", str(tmp_path / "out.yaml")]) == 2
    err = capsys.readouterr().err
    assert f"esm import: {path}{expected}" in err, err
    assert not (tmp_path / "out.yaml").exists()


def test_cli_writes_the_file_and_reports_notes_variables_and_the_validate_check(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.yaml"
    fixture = str(Path(__file__).parent / "aws_import_fixtures" / "sam_mq.yaml")
    assert main(["import", fixture, "-o", str(out), "--endpoint", "bad"]) == 2
    assert main(["import", fixture, "-o", str(out), "--target", "python",
                 "--handler", "shop.handlers:handle"]) == 0
    assert "handler: shop.handlers:handle" in out.read_text()
    err = capsys.readouterr().err
    assert "esm import: 2 mapping(s) written to" in err
    assert "SecretsManagerKmsKeyId: not carried over" in err
    assert "set before esm run: MY_BROKER_URL" in err
    # the validate check on the output names what is still to set before esm run
    assert "password_env: environment variable MY_BROKER_SECRET_NAME_PASSWORD is not set" in err
    assert out.read_text().startswith("# Written by `esm import`")


def test_several_files_give_unique_mapping_names_and_malformed_events_are_noted(
        tmp_path: Path) -> None:
    odd = tmp_path / "odd.yaml"
    odd.write_text("Resources:\n  Fn:\n    Type: AWS::Serverless::Function\n"
                   "    Properties:\n      Events: [not, a, mapping]\n"
                   "  Doc:\n    Type: AWS::Serverless::Function\n    Properties:\n"
                   "      Events: {Changes: {Type: DocumentDB, Properties: {}}}\n"
                   "  Rds:\n    Type: AWS::Lambda::EventSourceMapping\n    Properties:\n"
                   "      EventSourceArn: arn:aws:rds:us-east-1:123456789012:cluster:docs\n"
                   "      FunctionName: f\n"
                   "  M:\n    Type: AWS::Lambda::EventSourceMapping\n    Properties:\n"
                   "      EventSourceArn: arn:aws:sqs:us-east-1:123456789012:q\n"
                   "      FunctionName: f\n")
    fixture = str(Path(__file__).parent / "aws_import_fixtures" / "cli_create_sqs.json")
    result = import_files([fixture, fixture, str(odd)], Options())
    assert [m["name"] for m in result.mappings] == [
        "my-function-my-sq-squeue", "my-function-my-sq-squeue-2", "m"]
    found = "\n".join(notes(result))
    assert "Resources.Fn.Properties.Events: not a mapping" in found
    assert "Events.Changes: esm has no DocumentDB source: not imported" in found
    assert "Resources.Rds.Properties.EventSourceArn: esm has no source for rds ARNs" in found


def test_a_literal_dollar_brace_in_a_pattern_survives_esm_substitution(tmp_path: Path) -> None:
    from esm.config.loading import load_config

    template = tmp_path / "t.json"
    pattern = json.dumps({"body": {"tag": ["${x}"]}})
    template.write_text(json.dumps({"FunctionName": "f", "EventSourceArn": SQS_ARN,
                                    "FilterCriteria": {"Filters": [{"Pattern": pattern}]}}))
    result = import_files([str(template)], Options())
    out = tmp_path / "esm.yaml"
    out.write_text(result.text)
    [loaded_mapping] = load_config([str(out)], {}).mappings
    assert loaded_mapping.filter_patterns == (pattern,)
