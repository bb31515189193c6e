"""`esm import` round trips (issue #16): an AWS definition is imported with `--endpoint` and
`--target python`, checked with `esm validate`, and run by `esm run` against the real
test servers, records flowing end to end.

- SAM SQS event → ElasticMQ: orders reach the handler, filtered pings are deleted.
- SAM DynamoDB event on a table of the template → moto: the stream ARN only the deployed
  stack knows is a `${VARIABLE}`, set in the daemon's environment; inserts reach the handler.
- CloudFormation Kinesis mapping (with `!GetAtt` / `!Sub` and an SQS on-failure
  destination) → moto's Kinesis and ElasticMQ: records reach the handler, the poison record
  is bisected out and its notice lands in the dead-letter queue. The region and account the
  template leaves to the deployment are the `${AWS_REGION}` / `${AWS_ACCOUNT_ID}` variables,
  set in the daemon's environment as a user would.

The only edit to the imported file is test plumbing: the admin server's port (and, for
Kinesis, where the checkpoint file lives); the mapping itself runs as imported.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.e2e_support import (
    Journal,
    daemon_env,
    run_cli,
    run_until_settled,
)
from tests.integration.test_e2e_sqs import queue_counts, queue_empty, send
from tests.servers.common import free_port
from tests.servers.moto_server import MotoServer, moto_server  # noqa: F401
from tests.servers.sqs_server import ACCOUNT, REGION, SqsServer, sqs_server  # noqa: F401

pytestmark = pytest.mark.integration

# A SAM function with one event; the event's type and properties are filled in per test.
SAM_FUNCTION = """\
Transform: AWS::Serverless-2016-10-31
Resources:
  Function:
    Type: AWS::Serverless::Function
    Properties:
      Handler: app.lambda_handler
      Runtime: python3.12
      Timeout: 10
      Events:
        Event:
          Type: {event_type}
          Properties:
            FilterCriteria:
              Filters:
                - Pattern: '{pattern}'
"""
SQS_EVENT = """\
            Queue: {queue_arn}
            FunctionResponseTypes: [ReportBatchItemFailures]
"""
DYNAMODB_EVENT = """\
            Stream: !GetAtt Table.StreamArn
            StartingPosition: TRIM_HORIZON
  Table:
    Type: AWS::DynamoDB::Table
"""

FUNCTION_ARN = "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:clicks"
CFN_KINESIS = """\
Resources:
  Clicks:
    Type: AWS::Kinesis::Stream
    Properties:
      Name: {stream_name}
      ShardCount: 1
  ClicksMapping:
    Type: AWS::Lambda::EventSourceMapping
    Properties:
      EventSourceArn: !GetAtt Clicks.Arn
      FunctionName: !Sub "{function_arn}"
      StartingPosition: TRIM_HORIZON
      BatchSize: 20
      MaximumBatchingWindowInSeconds: 1
      BisectBatchOnFunctionError: true
      MaximumRetryAttempts: 1
      FilterCriteria:
        Filters:
          - Pattern: '{{"data": {{"kind": ["click"]}}}}'
      DestinationConfig:
        OnFailure:
          Destination: {dlq_arn}
"""


def import_template(tmp_path: Path, template: str, *args: str) -> Path:
    """`esm import` then `esm validate` as a user runs them; the output file."""
    source, out = tmp_path / "template.yaml", tmp_path / "imported.yaml"
    source.write_text(template)
    imported = run_cli("import", str(source), "-o", str(out), *args)
    assert imported.returncode == 0, imported.stderr
    print(f"\nesm import said:\n{imported.stderr}")
    return out


def with_admin_port(config: Path, **source_settings: Any) -> Path:
    """The imported file plus a free admin port (and source settings for test plumbing)."""
    document = yaml.safe_load(config.read_text())
    for mapping in document["mappings"]:
        mapping["source"].update(source_settings)
    document["server"] = {"listen": f"127.0.0.1:{free_port()}"}
    document["shutdown_timeout_seconds"] = 10
    path = config.with_name("run.yaml")
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def queue_arn(url: str) -> str:
    return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{url.rsplit('/', 1)[1]}"


def test_sam_sqs_event_imported_with_an_endpoint_runs_against_elasticmq(
        tmp_path: Path, sqs_server: SqsServer) -> None:  # noqa: F811
    # Given a SAM template whose function reads an SQS queue, and that queue in ElasticMQ
    url = sqs_server.create_queue(visibility_timeout=30)
    arn = queue_arn(url)
    template = SAM_FUNCTION.format(event_type="SQS", pattern='{"body": {"type": ["order"]}}')
    out = import_template(tmp_path, template + SQS_EVENT.format(queue_arn=arn),
                          "--endpoint", f"{arn}={sqs_server.endpoint_url}",
                          "--target", "python", "--handler", "tests.integration.handlers:record")
    imported = yaml.safe_load(out.read_text())["mappings"][0]
    assert imported["source"]["queue_url"] == url  # the ARN became the local queue's URL
    journal = Journal(tmp_path / "journal.jsonl")
    env = daemon_env(journal.path)
    validated = run_cli("validate", str(out), env=env)
    assert validated.returncode == 0, validated.stderr
    bodies = [{"id": f"m{n}", "type": "ping" if n % 4 == 3 else "order", "seq": n}
              for n in range(40)]
    send(sqs_server, url, bodies)
    orders = [b["id"] for b in bodies if b["type"] == "order"]
    # When esm runs the imported mapping until the queue is empty
    run_until_settled(with_admin_port(out, wait_time_seconds=1), env, tmp_path / "daemon.log",
                      journal, orders, lambda: queue_empty(sqs_server, url),
                      lambda: f"queue not empty: {queue_counts(sqs_server, url)}")
    # Then every order reached the handler and no filtered ping did
    seen = {line["id"] for line in journal.lines() if "id" in line}
    assert seen == set(orders)


def test_cloudformation_kinesis_mapping_runs_against_moto_with_its_sqs_destination(
        tmp_path: Path, moto_server: MotoServer, sqs_server: SqsServer) -> None:  # noqa: F811
    # Given a CloudFormation mapping from a Kinesis stream (in moto) with an on-failure
    # queue (in ElasticMQ)
    name, stream_arn = moto_server.create_kinesis_stream()
    dlq_url = sqs_server.create_queue()
    dlq_arn = queue_arn(dlq_url)
    out = import_template(
        tmp_path, CFN_KINESIS.format(stream_name=name, dlq_arn=dlq_arn, function_arn=FUNCTION_ARN),
        "--endpoint", f"Clicks={moto_server.endpoint_url}",
        "--endpoint", f"{dlq_arn}={sqs_server.endpoint_url}",
        "--target", "python", "--handler", "tests.integration.import_handlers:kinesis")
    imported = yaml.safe_load(out.read_text())["mappings"][0]
    assert imported["source"]["stream_arn"] == (
        f"arn:aws:kinesis:${{AWS_REGION}}:${{AWS_ACCOUNT_ID}}:stream/{name}")
    assert imported["destination_config"]["on_failure"]["queue_url"] == dlq_url
    journal = Journal(tmp_path / "journal.jsonl")
    region, account = stream_arn.split(":")[3:5]
    env = {**daemon_env(journal.path), "AWS_REGION": region, "AWS_ACCOUNT_ID": account}
    validated = run_cli("validate", str(out), env=env)
    assert validated.returncode == 0, validated.stderr
    records = [{"id": f"c{n}", "kind": "view" if n % 5 == 4 else "click"} for n in range(30)]
    records[7]["poison"] = True
    kinesis = moto_server.client("kinesis")
    for record in records:
        kinesis.put_record(StreamName=name, Data=json.dumps(record).encode(),
                           PartitionKey=record["id"])
    clicks = [r["id"] for r in records if r["kind"] == "click" and not r.get("poison")]
    # When esm runs the imported mapping until the poison record's notice is in the queue
    config = with_admin_port(out, checkpoint={"type": "sqlite",
                                              "path": str(tmp_path / "checkpoints.sqlite")})
    notices: list[dict[str, Any]] = []
    run_until_settled(config, env, tmp_path / "daemon.log", journal, clicks,
                      lambda: _received(sqs_server, dlq_url, notices),
                      lambda: "no notice in the on-failure queue")
    # Then every other click reached the handler, no view did, and the notice holds the
    # poison record
    assert set(journal.ok_ids()) == set(clicks)
    [notice] = notices
    payload = [json.loads(base64.b64decode(r["kinesis"]["data"]))
               for r in notice["payload"]["Records"]]
    assert [p["id"] for p in payload] == ["c7"]
    assert notice["KinesisBatchInfo"]["batchSize"] == 1


def test_sam_dynamodb_event_runs_against_moto_with_its_stream_arn_from_the_environment(
        tmp_path: Path, moto_server: MotoServer) -> None:  # noqa: F811
    # Given a SAM DynamoDB event on a table declared in the template, and that table in moto
    table, stream_arn = moto_server.create_table_with_stream()
    template = SAM_FUNCTION.format(event_type="DynamoDB", pattern='{"eventName": ["INSERT"]}')
    out = import_template(tmp_path, template + DYNAMODB_EVENT, "--endpoint",
                          f"Table={moto_server.endpoint_url}", "--target", "python",
                          "--handler", "tests.integration.import_handlers:dynamodb")
    imported = yaml.safe_load(out.read_text())["mappings"][0]
    assert imported["source"]["stream_arn"] == "${TABLE_STREAM_ARN}"
    assert "# TABLE_STREAM_ARN: ARN of the DynamoDB stream: !GetAtt Table.StreamArn" in (
        out.read_text())
    journal = Journal(tmp_path / "journal.jsonl")
    env = {**daemon_env(journal.path), "TABLE_STREAM_ARN": stream_arn}
    validated = run_cli("validate", str(out), env=env)
    assert validated.returncode == 0, validated.stderr
    dynamodb = moto_server.client("dynamodb")
    ids = [f"i{n}" for n in range(15)]
    for item_id in ids:
        dynamodb.put_item(TableName=table, Item={"id": {"S": item_id}, "v": {"N": "1"}})
    for item_id in ids[:5]:  # MODIFY events the filter drops
        dynamodb.put_item(TableName=table, Item={"id": {"S": item_id}, "v": {"N": "2"}})
    # one shard keeps order: once this last insert is handled, the modifications were seen
    dynamodb.put_item(TableName=table, Item={"id": {"S": "last"}, "v": {"N": "1"}})
    # When esm runs the imported mapping
    config = with_admin_port(out, checkpoint={"type": "sqlite",
                                              "path": str(tmp_path / "checkpoints.sqlite")})
    run_until_settled(config, env, tmp_path / "daemon.log", journal, [*ids, "last"],
                      lambda: True, lambda: "")
    # Then each insert reached the handler once, and no modification did
    assert sorted(journal.ok_ids()) == sorted([*ids, "last"])


def _received(server: SqsServer, url: str, notices: list[dict[str, Any]]) -> bool:
    answer = server.client().receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    notices += [json.loads(m["Body"]) for m in answer.get("Messages", [])]
    return bool(notices)
