"""The `http` target: POST the event to an endpoint, Lambda's error conventions."""
