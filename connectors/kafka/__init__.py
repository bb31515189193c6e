"""Kafka on kafka-python: the `source` (consumer group, lane = topic-partition) with its
`commits`, start `positions`, `hold` of paused lanes, `event` shape, `settings`,
`security` options and the two reaches into kafka-python's `internals`; and the on-failure
`destination` (a producer). Imports only esm's seams and kafka-python."""
