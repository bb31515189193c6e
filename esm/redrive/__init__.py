"""`esm redrive`: replay dead-lettered notices to the target or back to the source.
`cli` (arguments and progress), `sources` (reading notices from the destinations),
`state` (what was already replayed, so a rerun replays nothing twice), `replay`.
"""
