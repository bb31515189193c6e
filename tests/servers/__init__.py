"""Real servers for contract and integration tests, started as subprocesses on free ports.

Each `<name>_server.py` module offers `ensure_installed()` (idempotent; installs from the
package registries into a cache outside the repo) and a way to start the server. A server
that cannot be installed or started raises `ServerUnavailable`: tests fail loudly, never skip.
`python3 -m tests.servers install [NAME...]` installs them ahead of a test run (.ci/run).
"""
