"""The `file` on-failure destination: JSON lines, fsynced before records are acked."""
