"""Kafka on confluent-kafka (librdkafka): the `source` (consumer group, lane =
topic-partition) with its `commits`, start `positions`, `hold` of paused lanes, `event`
shape and `settings`; the on-failure `destination` (a producer); what both share: `clients`
(base configuration, acknowledged sends), `security` (AWS access configurations), `msk`
(IAM tokens, cluster ARNs) and `bootstrap_errors`. Imports only esm's seams and
confluent-kafka."""
