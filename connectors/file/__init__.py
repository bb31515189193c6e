"""Local files: the `file` on-failure destination (JSON lines, fsynced before records are
acked) and the `sqlite` tumbling-window store (`window_store`)."""
