"""Shared by queue connectors that keep what a replica holds from going back to the broker
while it is still held (SQS visibility, Redis Streams idle time)."""
