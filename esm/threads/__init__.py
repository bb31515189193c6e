"""How one mapping's work moves between threads: `lane_threads` (the pool lane workers run
on, able to let go of a thread stuck in a function), `overruns` (the watchdog that keeps
an inline call's timeout and hands its batch to another thread) and `relay` (the reader's
loop, which goes on on a new thread when a batch run on its thread holds it up). Imports
only esm's leaves.
"""
