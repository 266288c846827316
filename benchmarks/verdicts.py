"""The targets of issue 5, and whether a run's figures meet them."""


def _get(results, *path):
    for key in path:
        if not isinstance(results, dict) or key not in results:
            return None
        results = results[key]
    return results


def _verdict(target, value, goal, better="higher", unit="", fmt="{:.2f}"):
    if value is None:
        return {"target": target, "measured": "not measured", "met": None}
    met = value >= goal if better == "higher" else value < goal
    return {"target": target, "measured": fmt.format(value) + unit, "met": met}


def _spread(results, label):
    """Per-round ratios and the CPU cost ratio, which a noisy neighbour moves less."""
    rounds = _get(results, "throughput", "summary", "workloads", "flow", label, "vs_null_rounds")
    cost = _get(results, "throughput", "summary", "flow_cpu_cores", label, "cost_vs_null")
    if not rounds:
        return ""
    known = [r for r in rounds if r is not None]
    text = f" (rounds {min(known):.2f}–{max(known):.2f}" if known else " ("
    return text + (f"; CPU cost ratio {cost:.2f}×)" if cost is not None else ")")


def verdicts(results):
    flow = ("throughput", "summary", "workloads", "flow")
    growth = ("growth", "summary", "workloads", "flow")
    p99 = [_get(results, *flow, label, "p99_ms") for label in ("redis", "redis+ingest")]
    return [
        _verdict("redis request path ≥ 0.9× null (conversation flow, worker stopped)",
                 _get(results, *flow, "redis", "vs_null"), 0.9, unit="×" + _spread(results, "redis")),
        _verdict("whole system (worker running) ≥ 0.75× null",
                 _get(results, *flow, "redis+ingest", "vs_null"), 0.75,
                 unit="×" + _spread(results, "redis+ingest")),
        _verdict("drain of the headline backlog ≥ 50,000 events/s",
                 _get(results, "drain", "headline", "events_per_s"), 50_000, unit=" events/s",
                 fmt="{:,.0f}"),
        _verdict("redis p99 < 50 ms at 64 connections (request path)", p99[0], 50, "lower", " ms", "{:.1f}"),
        _verdict("redis+ingest p99 < 50 ms at 64 connections", p99[1], 50, "lower", " ms", "{:.1f}"),
        _verdict("redis at the grown store ≥ 0.95× its empty throughput",
                 _get(results, *growth, "redis grown", "vs_empty"), 0.95, unit="×"),
        _verdict("redis ≥ 10× sqlite at the grown store",
                 _get(results, *growth, "redis grown", "vs_sqlite"), 10, unit="×"),
        _verdict("(for reference, not a target) redis vs sqlite at the empty store",
                 _get(results, *growth, "redis empty", "vs_sqlite"), 0, unit="×"),
    ] + _range(results)


def _range(results):
    """/dashboard/range from the buckets, at the biggest store of the range scenario."""
    sizes = _get(results, "range", "sizes")
    if not sizes:
        return [{"target": "range: sequential p99 < 50 ms, 8 clients p99 < 100 ms, 0 errors, "
                           "0 mismatches (10M events)", "measured": "not measured", "met": None}]
    goals, size = results["range"]["targets"], sizes[-1]
    at = f"{size['events']:,} events"
    seq, conc = size["sequential"], size["concurrent"]
    errors = seq["errors"] + conc["errors"]
    missing = (seq["wanted"] - seq["queries"]) + (conc["wanted"] - conc["queries"])
    mismatches = sum(s["in_process"]["mismatches"] + s["sequential"].get("differs_from_in_process", 0)
                     for s in sizes)
    compared = sum(s["in_process"]["compared"] for s in sizes)
    return [
        _verdict(f"range, one query at a time: p99 < {goals['sequential_p99_ms']} ms ({at})",
                 seq["p99_ms"], goals["sequential_p99_ms"], "lower", " ms", "{:.1f}"),
        _verdict(f"range, {conc['clients']} concurrent clients: p99 < {goals['concurrent_p99_ms']} ms ({at})",
                 conc["p99_ms"], goals["concurrent_p99_ms"], "lower", " ms", "{:.1f}"),
        {"target": f"range: 0 errors, one at a time and concurrent ({at})",
         "measured": f"{errors} errors in {seq['queries'] + conc['queries']} queries"
                     + (f", {missing} not asked within the time bound" if missing else ""),
         "met": errors == 0 and missing == 0},
        {"target": "range: 0 mismatches, buckets vs the old scan and API vs in-process (every size)",
         "measured": f"{mismatches} in {compared} windows compared", "met": mismatches == 0 and compared > 0},
    ]
