"""The scenarios of the benchmark, one module each; each `run(stack, plan)` returns a dict."""
