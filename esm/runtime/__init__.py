"""Running the daemon: `daemon` (process lifecycle, signals), `assembly` (wiring one
mapping's parts), `supervisor` and `mapping_runtime` (restart with back-off), `reload`
(SIGHUP), `checkpoints`, `systemd` notify and `gc_tuning`. The only place that builds
connectors, through `esm.registry`; never imports one directly.
"""
