"""AWS parameters → esm keys, one mapping at a time: the working state of a translation
(`translation`), the whole `mapping`, its `sources` (SQS, Kinesis, DynamoDB Streams),
`kafka` (MSK, self-managed) and `mq` sources, `destinations` and `targets`."""
