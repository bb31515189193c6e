"""How one mapping's work moves between threads: `lane_threads` (the pool lane workers run
on, able to let go of a thread stuck in a function), `overruns` (the watchdog that keeps
an inline call's timeout and hands its batch to another thread) and `relay` (the reader's
loop, which goes on on a new thread when a batch run on its thread holds it up) and
`placement` (whether a mapping's batches run on the reader's thread or on lane threads,
from how its recent runs went). Imports only esm's leaves.
"""
