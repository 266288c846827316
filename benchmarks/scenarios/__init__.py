"""The scenarios, in run and report order; adding one: a module here and its name below
(what a scenario module provides: benchmarks/README.md, Layout)."""
SCENARIOS = ("throughput", "ledger", "growth", "drain", "memory", "staleness", "range", "cluster",
             "proxy", "page", "operations")
