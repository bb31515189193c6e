"""RabbitMQ on pika: the `source` (queue family, AWS's `aws:rmq` event) with its `settings`,
`connection` building, `event` shape, `lanes`, delivery `tags`, failed-delivery `attempts`
and the redrive `publish`er."""
