"""`DestinationConfig.OnFailure` → esm's `destination_config.on_failure`.

SQS queue ARN → `sqs` (queue URL), SNS topic ARN → `sns`, S3 bucket ARN → `s3`,
`kafka://TOPIC` (Kafka sources) → `kafka` with the source's brokers and security. SAM's
`OnFailure.Type` (SQS, SNS, S3) tells the kind when the ARN is a resource the template
cannot resolve; the value then becomes a `${VARIABLE}`. `OnSuccess` is not a mapping
destination in AWS either (ESM-SPEC §1.3) and is noted.
"""

from __future__ import annotations

from typing import Any

from esm.aws_import.arns import parse_arn, queue_at, queue_url
from esm.aws_import.intrinsics import Symbol
from esm.aws_import.translate.translation import Translation

_BY_RESOURCE = {"AWS::SQS::Queue": "sqs", "AWS::SNS::Topic": "sns", "AWS::S3::Bucket": "s3"}
_KAFKA_KEYS = ("auth", "tls", "username", "password_env", "server_root_ca_file",
               "client_certificate_file", "client_key_file")


def on_failure(t: Translation, source: dict[str, Any]) -> dict[str, Any] | None:
    config = t.take("DestinationConfig")
    if not isinstance(config, dict):
        return None
    if config.get("OnSuccess"):
        t.note("DestinationConfig.OnSuccess", "not carried over: event source mappings take "
                                              "only an on-failure destination")
    failure = config.get("OnFailure")
    value = failure.get("Destination") if isinstance(failure, dict) else None
    if value in (None, ""):
        return None  # get-event-source-mapping shows an unset destination as {}
    hint = str(failure.get("Type") or "").lower() if isinstance(failure, dict) else ""
    if source["type"] == "kafka" and isinstance(value, str) and value.startswith("kafka://"):
        return _kafka(value, source)
    kind = _kind(value, hint)
    if kind is None:
        t.note("DestinationConfig.OnFailure", f"destination {value!r} not carried over: esm "
                                              "writes to SQS, SNS, S3 or Kafka destinations")
        return None
    return _BUILDERS[kind](t, value)


def _kind(value: Any, hint: str) -> str | None:
    arn = parse_arn(value)
    if arn:
        return arn.service if arn.service in ("sqs", "sns", "s3") else None
    if isinstance(value, Symbol):
        return _BY_RESOURCE.get(value.resource_type or "") or (hint or None)
    return hint if hint in ("sqs", "sns", "s3") else None


def _kafka(value: str, source: dict[str, Any]) -> dict[str, Any]:
    destination = {"type": "kafka", "bootstrap_servers": source["bootstrap_servers"],
                   "topic": value.removeprefix("kafka://")}
    destination.update({k: source[k] for k in _KAFKA_KEYS if k in source})
    return destination


def _sqs(t: Translation, value: Any) -> dict[str, Any]:
    arn = parse_arn(value)
    endpoint = t.endpoint(value)
    destination: dict[str, Any] = {"type": "sqs"}
    if endpoint:
        destination["queue_url"], destination["endpoint_url"] = queue_at(endpoint, arn)
    elif arn:
        destination["queue_url"] = queue_url(arn)
    else:
        destination["queue_url"] = t.text(
            value if isinstance(value, Symbol) else None,
            t.stem_of(value, "dead letters") + "_QUEUE_URL",
            "URL of the on-failure SQS queue",
            "https://sqs.us-east-1.amazonaws.com/123456789012/my-dlq")
    return _located(destination, arn, endpoint)


def _sns(t: Translation, value: Any) -> dict[str, Any]:
    arn = parse_arn(value)
    topic = str(value) if arn else t.text(
        value if isinstance(value, Symbol) else None, t.stem_of(value, "dead letters") + "_ARN",
        "ARN of the on-failure SNS topic", "arn:aws:sns:us-east-1:123456789012:my-topic")
    endpoint = t.endpoint(value)
    destination = {"type": "sns", "topic_arn": topic}
    if endpoint:
        destination["endpoint_url"] = endpoint
    return _located(destination, arn, endpoint)


def _s3(t: Translation, value: Any) -> dict[str, Any]:
    arn = parse_arn(value)
    bucket = arn.resource.split("/")[0] if arn else t.text(
        value if isinstance(value, Symbol) else None,
        t.stem_of(value, "dead letters") + "_BUCKET", "the on-failure S3 bucket",
        "my-dead-letters")
    endpoint = t.endpoint(value)
    destination = {"type": "s3", "bucket": bucket}
    if endpoint:
        destination["endpoint_url"] = endpoint
    return _located(destination, arn, endpoint)


def _located(destination: dict[str, Any], arn: Any, endpoint: str | None) -> dict[str, Any]:
    region = arn.literal_region if arn else None
    if endpoint and region:
        destination["region"] = region
    return destination


_BUILDERS = {"sqs": _sqs, "sns": _sns, "s3": _s3}
