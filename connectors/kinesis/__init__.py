"""Kinesis Data Streams: the service `api` adapter and the `source` on top of
`connectors.shards`."""
