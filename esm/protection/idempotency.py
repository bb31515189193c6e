"""The idempotency key of an invocation: the same whenever the same records are invoked
again — a retry, a redelivery after a crash or kill -9, a rebalance that hands the lane to
another replica — and different for any other set of records.

It hashes what identifies the records at the broker, never anything of this process or
attempt: the mapping's name, the lane and every record's identity (`Record.item_id`: Kafka
partition and offset, stream entry id, sequence number, SQS message id). A bisected half,
or the rest of a batch after a partial failure, is another record set and gets another
key. Targets pass it on:
HTTP `Idempotency-Key`, Python `context.idempotency_key` and
`context.client_context.custom["idempotency_key"]`, Lambda `ClientContext.custom`.

Queue sources whose lanes are slots (SQS standard) may bring redelivered records back in
other batches; those are other record sets with other keys. Per record, the broker's own id
is in the event (`messageId`, offset, `eventID`) for handlers that deduplicate per record.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from esm.records import Record

KEY_HEX_CHARS = 64  # the whole sha256: a key is a promise that two record sets differ


def idempotency_key(mapping: str, lane: str, records: Sequence[Record]) -> str:
    """sha256 over mapping, lane and the records' ids, as hex."""
    digest = hashlib.sha256()
    # NUL separates the parts: no name, lane or record id contains one, so no two
    # different inputs join to the same text.
    digest.update(f"{mapping}\0{lane}\0{len(records)}\0".encode())
    digest.update("\0".join([r.item_id for r in records]).encode())
    return digest.hexdigest()[:KEY_HEX_CHARS]
