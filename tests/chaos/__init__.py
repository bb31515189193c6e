"""The damage suite: esm under kill -9, replica churn, broker restarts, failing targets and
destination outages, each scenario against a real server, seeded by ESM_CHAOS_SEED, checked
by one ledger (every produced record delivered or dead-lettered with its payload).

Short run (the default suite): `tests/run.sh tests/chaos`.
Long run (20+ kills per source, 20 Kafka churn runs): `ESM_CHAOS=long tests/run.sh
tests/chaos`, or `python -m tests.chaos` for the table alone."""
