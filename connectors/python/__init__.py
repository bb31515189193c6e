"""The `python` target: an in-process Lambda handler `handler(event, context)` (`target`),
run on worker threads with timeouts (`calls`)."""
