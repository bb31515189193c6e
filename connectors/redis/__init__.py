"""Redis Streams on redis-py: the `source` (consumer group, lane = stream key) with its
pipelined `pipe`, `client` building, `entries` decoding, pending-entry `reclaim` and
`settings`; the `redis_stream` on-failure `destination`; and the `redis` tumbling-window store
(`window_store`)."""
