"""The scenarios, in run and report order. Each module has run(stack, plan) -> dict (its
part of results.json) and render(result, table) -> markdown lines; optionally
targets(result or None) -> [(target, measured, met)], plot(result, out) -> [png names],
summarize(result) -> its summary (redone by --report-only). Adding one: a name here."""
SCENARIOS = ("throughput", "ledger", "growth", "drain", "memory", "staleness", "range", "cluster",
             "proxy", "page", "operations")
