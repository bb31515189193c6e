"""Amazon SQS (standard and FIFO): the `source` with its batched `ops`, `handout` of
message groups, `records` and start-up `checks`; and the on-failure `destination`.
Uses boto3 through `connectors.aws.clients`."""
