"""Amazon MQ for ActiveMQ: the `activemq` source over AMQP 1.0 (ESM-SPEC §2.6)."""
