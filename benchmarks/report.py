"""report.md from a run's results: the targets first, then one section per scenario."""
from benchmarks.verdicts import verdicts


def _n(value, digits=0):
    if value is None:
        return "–"
    if isinstance(value, float) and digits:
        return f"{value:,.{digits}f}"
    return f"{round(value):,}"


def _x(value):
    return "–" if value is None else f"{value:.2f}×"


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _machine(results):
    m = results["machine"]
    packages = ", ".join(f"{k} {v}" for k, v in m["packages"].items())
    return "\n".join([
        f"- {m['nproc']} CPUs: {m['cpu_model']}; {m['memory_gib']} GiB RAM; kernel {m['kernel']}; {m['os']}",
        f"- {m['redis']}; {m['mariadb']}; {m['wrk']}; Python {m['python']}; {packages}",
        f"- commit {m['git_commit']}; load average before {m['load_average_before']}, "
        f"after {m.get('load_average_after')} (the machine is shared: see the *other tenants* CPU column)",
    ])


def _targets(results):
    rows = [(v["target"], v["measured"], {True: "yes", False: "**no**", None: "–"}[v["met"]])
            for v in verdicts(results)]
    return _table(("target", "measured", "met"), rows)


def _wrk_rows(table, cpu=None):
    rows = []
    for label, row in table.items():
        rounds = ", ".join(_n(v) for v in row["rounds_ok_per_s"])
        cells = [label, _n(row["ok_per_s"]), rounds, _x(row.get("vs_null")), _x(row.get("vs_sqlite")),
                 _n(row["p50_ms"], 1), _n(row["p99_ms"], 1), _n(row["p999_ms"], 1),
                 _n(row["errors"]), _n(row["generator_cores"], 2)]
        if cpu is not None:
            c = cpu[label]
            cells += [_n(c["api"], 2), _n(c["redis"], 2), _n(c["mariadb"], 2), _n(c["ingest"], 2),
                      _n(c["others"], 2), _n(c["api_us_per_response"]), _n(c["us_per_response"]),
                      _x(c.get("cost_vs_null"))]
        rows.append(cells)
    return rows


WRK_HEADER = ("backend", "2xx/s (median)", "per round", "vs null", "vs sqlite", "p50 ms",
              "p99 ms", "p99.9 ms", "errors", "wrk cores")
CPU_HEADER = ("API cores", "Redis", "MariaDB", "worker", "other tenants", "API µs/2xx",
              "all µs/2xx", "cost ratio")


def _throughput(results, figures):
    t = results["throughput"]
    s = t["summary"]
    plan = results["plan"]
    parts = [
        "## Throughput and latency\n",
        f"wrk `-t1 -c64`, pinned with `taskset -c 1`, {plan['duration']} s windows, "
        f"{plan['rounds']} interleaved round(s) (null, sqlite, redis, redis+ingest, null, ...); "
        "figures are medians over rounds, ratios are of those medians (per-round ratios in "
        "results.json). *redis*: request path alone, ingest worker stopped during the window "
        "and the backlog drained afterwards. *redis+ingest*: the whole system, the worker "
        "draining on the same two cores. CPU columns: average cores used during the window "
        "by each part; *other tenants*: what the rest of this shared host used meanwhile "
        "(all busy CPU in /proc/stat minus ours and wrk's), i.e. how much of the two cores the "
        "window did not get. *API µs/2xx*: API CPU per 2xx response; *all µs/2xx*: API, "
        "Redis, MariaDB and worker CPU per 2xx response; *cost ratio*: null's all µs/2xx "
        "divided by the backend's: the throughput ratio to expect when the API is CPU-bound and "
        "every window gets the same CPU (steadier than the throughput ratio on a shared host; "
        "meaningless for sqlite, which waits on its lock, not on CPU).\n",
        "### Conversation flow (/initial, then /followup for half of the 200s), empty store\n",
        _table(WRK_HEADER + CPU_HEADER, _wrk_rows(s["workloads"]["flow"], s["flow_cpu_cores"])),
        "\n### Dashboard reads (half /dashboard/symbol, half /dashboard/range over today)\n",
        f"On a store holding {plan['read_events']:,} events of today, stored before the window.\n",
        _table(WRK_HEADER, _wrk_rows(s["workloads"]["reads"])),
        "\n### Mixed: the conversation flow with paced dashboard reads beside it\n",
        f"A second wrk, {plan['read_connections']} connections pausing {plan['read_delay_ms']} ms "
        f"between reads, on a store holding {plan['read_events']:,} events.\n",
        "Writes:\n", _table(WRK_HEADER, _wrk_rows(s["workloads"]["mixed_writes"])),
        "\nReads:\n", _table(WRK_HEADER, _wrk_rows(s["workloads"]["mixed_reads"])),
        "\n### client/client.py (`--concurrency "
        f"{plan['client_concurrency']} --conversations {plan['client_conversations']}`), one run each\n",
        _table(("backend", "req/s", "p50 ms", "p99 ms", "errors", "client cores", "accuracy first/last tenth"),
               [(c["backend"], _n(c["requests_per_s"]), _n(c["p50_ms"], 1), _n(c["p99_ms"], 1),
                 _n(c["errors"]), _n(c["generator_cores"], 2),
                 f"{c['accuracy_first_tenth']} / {c['accuracy_last_tenth']}") for c in t["client"]]),
        "",
        _generator_note(results),
        _lag_note(s),
        _checks(s["checks"]),
    ]
    if "throughput" in figures:
        parts.append(f"\n![throughput]({figures['throughput']})")
    if "latency" in figures:
        parts.append(f"\n![latency percentiles]({figures['latency']})")
    return "\n".join(parts)


def _generator_note(results):
    s = results["throughput"]["summary"]
    null = s["workloads"]["flow"].get("null")
    client = next((c for c in results["throughput"]["client"] if c["backend"] == "null"), None)
    if not null:
        return ""
    note = (f"**The generator is not the limit.** Against null, wrk used {null['generator_cores']:.2f} "
            f"of its core for {_n(null['ok_per_s'])} responses/s while the API used "
            f"{s['flow_cpu_cores']['null']['api']:.2f} cores. ")
    if client:
        note += (f"client.py, a Python client, drove null at {_n(client['requests_per_s'])} req/s using "
                 f"{client['generator_cores']:.2f} cores: it competes with the API for the two "
                 "cores, which is why the headline figures use wrk. ")
    note += ("Pinning wrk to core 1 does not reserve that core: the API workers, Redis, MariaDB "
             "and the worker still run on both cores and share core 1 with wrk; pinning only "
             "keeps wrk from migrating, so its share stays small and stable.\n")
    return note


def _lag_note(summary):
    lag = summary["flow_max_backlog"].get("redis+ingest")
    if lag is None:
        return ""
    return (f"**Whole-system lag.** While the API ran at its maximum rate with the worker "
            f"draining, the undrained backlog peaked at {_n(lag)} events (sampled every 0.5 s; "
            f"see lag.png), and og.events had everything at most "
            f"{summary['flow_max_settle_s']['redis+ingest']} s after the window ended.\n")


def _checks(checks):
    if not checks:
        return ""
    bad = [c for c in checks if not c["ok"]]
    stored = sum(c["stored"] for c in checks)
    if bad:
        return f"**Event checks FAILED** for {len(bad)} of {len(checks)} windows: {bad}\n"
    return (f"**Every accepted event reached og.events**: {len(checks)} checks, {_n(stored)} events; "
            "each time og.events gained exactly what the API appended to the stream "
            "(XINFO STREAM entries-added), at least every response wrk saw as 200, and the "
            "stream was left empty.\n")


def _growth(results, figures):
    g = results["growth"]
    s = g["summary"]["workloads"]
    rows = []
    for key, what in (("flow", "conversation flow"), ("reads", "/dashboard/symbol")):
        for label, row in s[key].items():
            rows.append((what, label, _n(row["ok_per_s"]), ", ".join(_n(v) for v in row["rounds_ok_per_s"]),
                         _x(row.get("vs_empty")), _x(row.get("vs_sqlite")), _n(row["p50_ms"], 1),
                         _n(row["p99_ms"], 1), _n(row["p999_ms"], 1), _n(row["errors"])))
    pre = g["preload"]
    text = [
        "## Growth: empty vs stored events\n",
        f"*grown*: {pre['redis']['events']:,} events stored before the rounds, not through the "
        f"API (sqlite: executemany into conversations, {pre['sqlite']['seconds']} s; redis: "
        f"multi-row INSERTs into og.events then `python -m ingest rebuild`, "
        f"{pre['redis']['seconds']} s: `{pre['redis']['rebuild']}`). *empty*: emptied before "
        "every round. Redis: request path (worker stopped during the windows).\n",
        _table(("workload", "store", "2xx/s", "per round", "vs empty", "redis vs sqlite", "p50 ms",
                "p99 ms", "p99.9 ms", "errors"), rows),
        _checks(g["summary"]["checks"]),
    ]
    if "growth" in figures:
        text.append(f"\n![growth]({figures['growth']})")
    return "\n".join(text)


def _drain(results, figures):
    d = results["drain"]
    rows = [(r["batch_size"], _n(r["backlog"]), r["drain_s"], _n(r["events_per_s"]),
             r["worker_cpu_us_per_event"], r["worker_cores"], r["mariadb_cores"],
             _n(r["fill_per_s"]), "ok" if r["ok"] else "**mismatch**")
            for r in d["batch_sizes"] + [d["headline"]]]
    text = [
        "## Drain: one worker process, backlog to MariaDB\n",
        "The stream is filled directly with XADD (fields as server/lua/*.lua write them), then "
        "`python -m ingest run --burst` drains it; the time is the worker's own, from its "
        "*starting* to its *stopped* log line. CPU µs/event counts the whole process "
        "(start-up included). The last row is the headline backlog at the default batch size.\n",
        _table(("batch size", "backlog", "seconds", "events/s", "worker CPU µs/event", "worker cores",
                "MariaDB cores", "XADD fill/s", "og.events"), rows),
    ]
    if "lag" in figures:
        text.append(f"\n![lag]({figures['lag']})")
    return "\n".join(text)


def _memory(results):
    m = results["memory"]
    return "\n".join([
        "## Redis memory\n",
        f"{m['conversations']:,} conversations run through the API's Lua scripts (half followed "
        f"up: {m['events']:,} events), worker stopped; then drained and trimmed.\n",
        _table(("", "bytes"), [
            ("per conversation (used_memory after drain − empty) / conversations",
             _n(m["bytes_per_conversation"])),
            ("per stream entry (used_memory before − after drain) / events", _n(m["bytes_per_stream_entry"])),
            ("MEMORY USAGE of one conversation key", _n(m["memory_usage_conversation_key"])),
            ("MEMORY USAGE of the stream / entries", _n(m["memory_usage_stream_per_entry"])),
        ]),
        f"\nAfter the drain the stream held {m['stream_length_after_drain']} entries and og.events "
        f"{m['stored']:,} rows. At the default high-water mark (OG_BACKLOG_HIGH_WATER) a full "
        "backlog costs about high-water × bytes per entry.",
    ])


def _staleness(results):
    s = results["staleness"]
    load = s["load"]["results"][0]
    rows = [(name, f"{part['seen']}/{part['probes']}", part["p50_ms"], part["p90_ms"], part["max_ms"])
            for name, part in (("idle", s["idle"]), (f"under load ({_n(load['ok_per_s'])} 2xx/s)", s["loaded"]))]
    return "\n".join([
        "## /dashboard/range staleness\n",
        "Time from the 200 of a probe's /initial (symbol z; the load uses a–y) until "
        "/dashboard/range, polled every 10 ms, counts it; ingest worker running with its "
        "default batch settings.\n",
        _table(("", "seen", "p50 ms", "p90 ms", "max ms"), rows),
    ])


def render(results, figures):
    parts = [
        "# Benchmark report\n",
        f"`{results['command']}` — started {results['started']}, took {results['seconds']:.0f} s. "
        "Raw figures: results.json. How to read this: benchmarks/README.md.\n",
        "## Machine\n", _machine(results), "\n## Targets\n", _targets(results),
    ]
    for name, error in results.get("failed", {}).items():
        parts += ["", f"**Scenario {name} FAILED**: ```{error.strip()[-1500:]}```"]
    for name, section in (("throughput", lambda: _throughput(results, figures)),
                          ("growth", lambda: _growth(results, figures)),
                          ("drain", lambda: _drain(results, figures)),
                          ("memory", lambda: _memory(results)),
                          ("staleness", lambda: _staleness(results))):
        if name in results:
            parts += ["", section()]
    return "\n".join(parts) + "\n"
