"""DynamoDB Streams: the service adapter and record shape on top of `connectors.shards`."""
