"""connectors.redis.client: the XREADGROUP reply shape the source decodes."""

from __future__ import annotations

import pytest

from connectors.redis.client import stream_reply_pairs

ENTRIES = [[b"1-0", [b"body", b"x"]], [b"2-0", [b"body", b"y"]]]


@pytest.mark.parametrize("reply", [
    {b"orders": ENTRIES},           # RESP3: a map of stream → entries
    [[b"orders", ENTRIES]],         # RESP2: an array of [stream, entries]
])
def test_both_protocols_give_stream_entry_pairs(reply: object) -> None:
    # When a reply of either protocol comes back / Then the source sees (stream, entries)
    assert [tuple(pair) for pair in stream_reply_pairs(reply)] == [(b"orders", ENTRIES)]


@pytest.mark.parametrize("reply", [None, [], {}])
def test_a_timed_out_block_is_an_empty_list(reply: object) -> None:
    assert stream_reply_pairs(reply) == []
