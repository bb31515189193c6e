"""Kafka on confluent-kafka (librdkafka): the `source` (consumer group, lane =
topic-partition) with its `membership` (owned partitions, rebalances), `commits`, start
`positions` and lag, `hold` of paused lanes, `event` shape and `settings`; the on-failure
`destination` (a producer); what both share: `clients` (base configuration, acknowledged
sends), `security` (AWS access configurations), `msk` (IAM tokens, cluster ARNs) and
`bootstrap_errors`. Imports only esm's seams and confluent-kafka."""
