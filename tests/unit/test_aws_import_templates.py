"""`esm import` on SAM and CloudFormation templates and on AWS CLI JSON (issue #16).

The fixtures follow the documented examples: the AWS SAM developer guide's SQS, Kinesis,
DynamoDB, MSK, SelfManagedKafka and MQ event sources, the CloudFormation user guide's
AWS::Lambda::EventSourceMapping examples, and the shapes of `aws lambda
create-event-source-mapping --cli-input-json`, `get-event-source-mapping` and
`list-event-source-mappings`. Every output must pass `esm validate`'s own code path.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.unit.aws_import_support import (
    FIXTURES,
    imported,
    loaded,
    mapping,
    notes,
    validation_problems,
)

VALID_FIXTURES = sorted(p.name for p in FIXTURES.iterdir() if p.name != "sam_mq.yaml")


@pytest.mark.parametrize("fixture", VALID_FIXTURES)
def test_every_import_passes_esm_validate(fixture: str, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a documented AWS definition, when it is imported
    result = imported(fixture)
    # Then esm validate accepts the output (variables set to their examples)
    assert result.mappings
    assert validation_problems(result, tmp_path, monkeypatch) == []


@pytest.mark.parametrize("fixture", sorted(p.name for p in FIXTURES.iterdir()))
def test_yaml_loads_back_to_the_mappings_and_every_variable_is_explained(fixture: str) -> None:
    result = imported(fixture)
    assert loaded(result) == {"mappings": result.mappings}
    header = [line for line in result.text.splitlines() if line.startswith("#   ")]
    body = "\n".join(line for line in result.text.splitlines() if not line.startswith("#"))
    for name in set(re.findall(r"(?<!\$)\$\{([A-Za-z_]\w*)", body)):
        assert any(line.startswith(f"#   {name}: ") for line in header), name
        assert re.search(rf"\$\{{{name}\b.*# .*{name}: ", result.text), f"no comment: {name}"


def test_sam_sqs_events_become_sqs_mappings_with_their_queue_urls() -> None:
    result = imported("sam_sqs.yaml")
    existing = mapping(result, "orders-function-sqs-event")
    assert existing["enabled"] is False
    assert existing["source"] == {
        "type": "sqs", "queue_url": "https://sqs.us-west-2.amazonaws.com/012345678901/my-queue"}
    declared = mapping(result, "orders-function-orders-queue-event")
    assert declared["source"]["queue_url"] == (
        "https://sqs.${AWS_REGION}.amazonaws.com/${AWS_ACCOUNT_ID}/orders")
    assert declared["filter_criteria"] == {
        "filters": [{"pattern": '{"body": {"type": ["order"]}}'}]}
    assert (declared["batch_size"], declared["maximum_batching_window_in_seconds"]) == (100, 5)
    assert declared["function_response_types"] == ["ReportBatchItemFailures"]
    assert declared["scaling_config"] == {"maximum_concurrency": 5}
    # the function: deployed name unknown to the template, Timeout from Globals
    assert declared["target"] == {"type": "lambda", "function_name": "${ORDERS_FUNCTION_NAME}",
                                  "timeout_seconds": 30}
    assert any("Events.Nightly: event of type Schedule is not an event source mapping"
               in n for n in notes(result))


def test_sam_kinesis_event_carries_failure_handling_and_notes_tumbling_window() -> None:
    result = imported("sam_kinesis.yaml")
    clicks = mapping(result, "stream-function-clicks-event")
    assert clicks["source"] == {
        "type": "kinesis", "stream_arn": "arn:aws:kinesis:${AWS_REGION}:${AWS_ACCOUNT_ID}"
                                         ":stream/clicks",
        "starting_position": "AT_TIMESTAMP", "starting_position_timestamp": 1700000000}
    assert {k: clicks[k] for k in ("bisect_batch_on_function_error", "maximum_retry_attempts",
                                   "maximum_record_age_in_seconds", "parallelization_factor")
            } == {"bisect_batch_on_function_error": True, "maximum_retry_attempts": 3,
                  "maximum_record_age_in_seconds": 3600, "parallelization_factor": 2}
    assert clicks["destination_config"] == {"on_failure": {
        "type": "sqs", "queue_url": "${CLICKS_DEAD_LETTERS_QUEUE_URL}"}}
    assert clicks["target"] == {"type": "lambda", "function_name": "stream-consumer",
                                "timeout_seconds": 60}
    assert any("ClicksEvent.Properties.TumblingWindowInSeconds: 60 not carried over" in n
               for n in notes(result))


def test_sam_dynamodb_stream_of_a_declared_table_becomes_a_variable_with_its_meaning() -> None:
    result = imported("sam_dynamodb.yaml")
    existing = mapping(result, "table-function-ddb-event")
    assert existing["source"]["stream_arn"] == (
        "arn:aws:dynamodb:us-east-1:123456789012:table/TestTable/stream/2016-08-11T21:21:33.291")
    declared = mapping(result, "table-function-declared-table-event")
    assert declared["source"] == {"type": "dynamodb_streams",
                                  "stream_arn": "${MY_DYNAMO_DB_TABLE_STREAM_ARN}",
                                  "starting_position": "LATEST"}
    assert declared["destination_config"] == {
        "on_failure": {"type": "sns", "topic_arn": "${FAILURE_TOPIC_ARN}"}}
    assert ("stream_arn: ${MY_DYNAMO_DB_TABLE_STREAM_ARN}  # MY_DYNAMO_DB_TABLE_STREAM_ARN: "
            "ARN of the DynamoDB stream: !GetAtt MyDynamoDBTable.StreamArn "
            "(AWS::DynamoDB::Table)") in result.text


def test_msk_cluster_brokers_become_a_variable_and_scram_secret_becomes_env_settings() -> None:
    result = imported("sam_msk.yaml")
    msk = mapping(result, "kafka-function-msk-event")
    assert msk["source"] == {
        "type": "kafka", "bootstrap_servers": ["${EXAMPLE_CLUSTER_NAME_BOOTSTRAP_SERVERS}"],
        "topics": ["MyTopic"], "consumer_group_id": "orders-consumers",
        "starting_position": "LATEST", "auth": "SASL_SCRAM_512_AUTH",
        "username": "${AMAZON_MSK_ORDERS_USERNAME}", "password_env": "AMAZON_MSK_ORDERS_PASSWORD",
        "tls": True, "msk_cluster_arn": "arn:aws:kafka:us-east-1:012345678012:cluster/"
                                        "exampleClusterName/abcdefab-1234-abcd-5678-cdef0123ab01-2"}
    assert msk["destination_config"] == {"on_failure": {"type": "s3", "bucket": "msk-failures"}}
    declared = mapping(result, "kafka-function-declared-cluster-event")
    assert declared["source"]["bootstrap_servers"] == ["${MY_MSK_CLUSTER_BOOTSTRAP_SERVERS}"]
    assert declared["source"]["consumer_group_id"] == (
        "esm-kafka-function-declared-cluster-event")
    assert any("DeclaredClusterEvent.Properties.SourceAccessConfigurations: none given: AWS "
               "reaches the MSK cluster with IAM" in n for n in notes(result))
    assert (declared["source"]["auth"], declared["source"]["region"]) == (
        "AWS_MSK_IAM", "${AWS_REGION}")


def test_self_managed_kafka_access_configurations_become_auth_settings() -> None:
    result = imported("sam_self_managed_kafka.yaml")
    basic = mapping(result, "kafka-function-self-managed-kafka-event")
    assert basic["batch_size"] == 1000
    assert {k: basic["source"][k] for k in ("bootstrap_servers", "auth", "password_env")} == {
        "bootstrap_servers": ["abc.xyz.com:9092"], "auth": "BASIC_AUTH",
        "password_env": "MY_SECRET_NAME_PASSWORD"}
    mtls = mapping(result, "kafka-function-my-kafka-event")["source"]
    assert mtls["auth"] == "CLIENT_CERTIFICATE_TLS_AUTH"
    assert mtls["client_certificate_file"] == "${KAFKA_CLIENT_CERT_CERTIFICATE_FILE}"
    assert mtls["server_root_ca_file"] == "${KAFKA_ROOT_CA_FILE}"
    assert mtls["consumer_group_id"] == "topic1-readers"
    destination = mapping(result, "kafka-function-my-kafka-event")["destination_config"]
    assert destination["on_failure"]["type"] == "kafka"
    assert destination["on_failure"]["topic"] == "topic1-dead-letters"
    assert destination["on_failure"]["bootstrap_servers"] == ["abc.xyz.com:9092",
                                                              "def.xyz.com:9092"]
    found = notes(result)
    assert any("SourceAccessConfigurations[2]: VPC_SUBNET subnet:subnet-12345 not carried"
               in n for n in found)
    assert any("SourceAccessConfigurations[3]: VPC_SECURITY_GROUP" in n for n in found)


def test_mq_brokers_become_rabbitmq_or_activemq_sources_that_validate(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = imported("sam_mq.yaml")
    active = mapping(result, "mq-function-mq-event")["source"]
    assert active == {"type": "activemq", "url": "${MY_BROKER_URL}", "queue": "orders",
                      "username": "${MY_BROKER_SECRET_NAME_USERNAME}",
                      "password_env": "MY_BROKER_SECRET_NAME_PASSWORD",
                      "broker_arn": "arn:aws:mq:us-east-2:123456789012:broker:MyBroker:"
                                    "b-1234a5b6-78cd-901e-2fgh-3i45j6k178l9"}
    rabbit = mapping(result, "mq-function-rabbit-event")["source"]
    assert rabbit == {"type": "rabbitmq",  # every queue, user and virtual host in the URL
                      "url": "amqps://${RABBIT_SECRET_USERNAME}@${RABBIT_BROKER_HOST}/%2Fshop",
                      "password_env": "RABBIT_SECRET_PASSWORD", "queues": ["payments", "refunds"]}
    found = notes(result)
    assert any("ActiveMQ assumed" in n for n in found)
    assert not any("source type yet" in n for n in found)
    # both mappings validate: esm has both source types
    assert validation_problems(result, tmp_path, monkeypatch) == []


def test_rabbitmq_endpoint_given_gets_the_user_and_virtual_host() -> None:
    result = imported("sam_mq.yaml", endpoints={
        "RabbitBroker": "amqps://b-9.mq.eu-west-1.amazonaws.com:5671"})
    source = mapping(result, "mq-function-rabbit-event")["source"]
    assert source["url"] == (
        "amqps://${RABBIT_SECRET_USERNAME}@b-9.mq.eu-west-1.amazonaws.com:5671/%2Fshop")


def test_cloudformation_user_guide_kinesis_example_in_json_and_long_form_yaml() -> None:
    json_form = mapping(imported("cfn_kinesis.json"), "event-source-mapping")
    assert json_form["source"]["stream_arn"] == (
        "arn:aws:kinesis:${AWS_REGION}:${AWS_ACCOUNT_ID}:stream/${KINESIS_STREAM_NAME}")
    assert json_form["target"] == {"type": "lambda", "function_name": "${LAMBDA_FUNCTION_NAME}",
                                   "timeout_seconds": 120}
    long_form = mapping(imported("cfn_kinesis_long_form.yaml"), "my-event-source-mapping")
    assert long_form["source"]["stream_arn"] == (
        "arn:aws:kinesis:${AWS_REGION}:${AWS_ACCOUNT_ID}:stream/orders-stream")
    assert long_form["target"]["function_name"] == (
        "arn:aws:lambda:${AWS_REGION}:${AWS_ACCOUNT_ID}:function:orders-processor")


def test_cloudformation_kafka_examples_resolve_parameters_and_kafka_destinations() -> None:
    result = imported("cfn_kafka.yaml")
    msk = mapping(result, "msk-event-source-mapping")
    assert msk["maximum_retry_attempts"] == 5
    assert msk["destination_config"]["on_failure"] == {
        "type": "sqs", "queue_url": "https://sqs.us-east-1.amazonaws.com/${AWS_ACCOUNT_ID}"
                                    "/kafka-failures"}
    smk = mapping(result, "self-managed-event-source-mapping")
    assert smk["source"]["bootstrap_servers"] == ["abc.xyz.com:9092", "abc2.xyz.com:9092"]
    assert smk["source"]["consumer_group_id"] == "${AWS_STACK_NAME}-readers"
    assert smk["source"]["password_env"] == "KAFKA_CREDENTIALS_PASSWORD"  # parameter default
    assert smk["target"]["timeout_seconds"] == 45  # a Number parameter's default
    assert smk["destination_config"]["on_failure"]["topic"] == "AWSKafkaTopic-failures"


def test_unsupported_properties_and_unresolvable_sources_are_listed_never_dropped() -> None:
    result = imported("cfn_sqs_filter.yaml")
    assert [m["name"] for m in result.mappings] == ["my-event-source-mapping"]
    sqs = result.mappings[0]
    assert sqs["batch_size"] == 5  # !FindInMap on the Stage parameter's default
    assert sqs["enabled"] is False  # !If on a condition the defaults decide
    found = "\n".join(notes(result))
    for key in ("KMSKeyArn", "MetricsConfig", "ProvisionedPollerConfig", "Tags"):
        assert f"MyEventSourceMapping.Properties.{key}: not carried over" in found
    assert ("FromParameterMapping.Properties.EventSourceArn: cannot tell the source type of "
            "template parameter QueueArn (String, no default)") in found
    assert "ImportedQueueMapping.Properties.EventSourceArn: cannot tell" in found


def test_create_event_source_mapping_json_with_a_consumer_and_on_success() -> None:
    result = imported("cli_create_kinesis.json")
    [kinesis] = result.mappings
    assert kinesis["source"]["stream_arn"] == (
        "arn:aws:kinesis:us-west-2:123456789012:stream/lambda-stream")
    assert kinesis["parallelization_factor"] == 3
    assert kinesis["destination_config"] == {"on_failure": {
        "type": "sns", "topic_arn": "arn:aws:sns:us-west-2:123456789012:failures"}}
    assert kinesis["target"]["function_name"] == (
        "arn:aws:lambda:us-west-2:123456789012:function:my-function:PROD")
    found = "\n".join(notes(result))
    assert "enhanced fan-out" in found
    assert "DestinationConfig.OnSuccess: not carried over" in found
    assert "Tags: not carried over" in found and "MetricsConfig: not carried over" in found
    assert "TumblingWindowInSeconds" not in found  # 0 is "off", as in esm


def test_list_output_keeps_state_and_drops_only_echoed_defaults() -> None:
    result = imported("cli_list.json")
    sqs, table, kafka = result.mappings
    assert sqs == {"name": "my-function-my-sq-squeue", "source": {
        "type": "sqs", "queue_url": "https://sqs.us-west-2.amazonaws.com/123456789012/mySQSqueue"},
        "batch_size": 5, "target": {"type": "lambda", "function_name":
                                    "arn:aws:lambda:us-west-2:123456789012:function:my-function"}}
    assert table["enabled"] is False  # State: Disabled
    assert "maximum_retry_attempts" not in table and "destination_config" not in table
    assert kafka["source"]["starting_position_timestamp"] == 1704067200.0
    assert kafka["source"]["auth"] == "SASL_SCRAM_256_AUTH"
    assert notes(result) == []


def test_get_output_carries_its_destination_and_limits() -> None:
    [stream] = imported("cli_get_kinesis.json").mappings
    assert stream["destination_config"]["on_failure"]["queue_url"] == (
        "https://sqs.us-east-1.amazonaws.com/123456789012/stream-failures")
    assert (stream["maximum_retry_attempts"], stream["maximum_record_age_in_seconds"]) == (
        10000, 604800)
    assert stream["filter_criteria"]["filters"][0]["pattern"] == '{"data": {"kind": ["order"]}}'


def test_parameters_without_defaults_become_variables_named_after_them() -> None:
    [kafka] = imported("cfn_parameters.yaml").mappings
    assert kafka["enabled"] == "${MAPPING_ENABLED}"
    assert kafka["batch_size"] == "${BATCH_SIZE}"
    assert kafka["source"]["topics"] == ["${TOPIC}"]
    assert kafka["source"]["bootstrap_servers"] == ["${BROKER_LIST}"]
