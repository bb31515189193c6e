"""How one mapping's work moves between threads: `lane_threads` (the pool lane workers run
on, able to let go of a thread stuck in a function) and `overruns` (the watchdog that keeps
an inline call's timeout and hands its batch to another thread). Imports only esm's leaves.
"""
