"""Shard streams, shared by DynamoDB Streams and Kinesis: the shard `model`, the `reader`
and its `fetch`, shard `leases` kept in a lease table (`sqlite_leases`,
`dynamodb_leases`) so replicas share the work, and the service-independent `source`."""
