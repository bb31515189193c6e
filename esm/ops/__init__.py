"""What operators see: the HTTP `server` (/metrics, /healthz, /readyz, /mappings) and its
`admin` actions, Prometheus `metrics`, structured `logs`, and the per-mapping `status`
with its `status_table` rendering. Imports only esm's leaves.
"""
