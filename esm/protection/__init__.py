"""Protecting the target: `rate_limit` (token buckets before invoke, shared by a
`rate_limit_group`), `breaker` (stop polling after consecutive invoke errors, probe, resume)
and `idempotency` (one key per record set invoked). Pure of I/O: time comes from the
injected clock and waits end on the stop event. Imports only esm's leaves and config types.
"""
