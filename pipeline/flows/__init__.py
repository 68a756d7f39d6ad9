"""Orchestrator entry points for the use cases `stockpipe` runs; each needs its own extra
(``pip install -e ".[prefect]"``) and is never imported by the CLI or the core."""
