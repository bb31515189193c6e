"""Failure handling, AWS's rules (ESM-SPEC §4): the pure `policy` that decides ack, retry,
split or dead-letter, its `backoff`, the parsing of partial batch `responses`, and the
on-failure `notices` with the `dead_letter` writer. Imports only esm's leaves and ops.
"""
