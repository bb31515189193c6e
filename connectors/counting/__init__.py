"""Shared by queue connectors whose broker counts every return of a message (SQS, ActiveMQ):
esm's own count of the deliveries that failed at the target."""
