"""Connectors, one package per broker or service; the folder name is the `type:` users
write where it can be (`kafka`, `redis`, `sqs`, `dynamodb_streams`, `kinesis`, `http`,
`python`, `file`, `memory`), and each holds its source, destination, event and settings
side by side.

Rules (tests/unit/test_architecture.py): a connector imports from esm only its seams
(`esm.interfaces`, `esm.records`, `esm.errors`, `esm.clock`) and its own client library;
one broker's package never imports another's. The shared helpers are `connectors.aws.clients`
(boto3 clients, for every AWS connector) and `connectors.shards` (the shard reader and
leases behind DynamoDB Streams and Kinesis).
"""
