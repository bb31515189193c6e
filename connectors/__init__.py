"""Connectors: sources, targets and on-failure destinations.

Each connector imports only `esm.interfaces`, `esm.records`, `esm.errors` and its own client
library; connectors never import each other (a test keeps this true).
"""
