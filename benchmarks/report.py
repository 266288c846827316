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
        f"- {m['redis']}; {m['mariadb']}; {m['wrk']}"
        + (f"; {m['nginx']}" if m.get("nginx") else "") + f"; Python {m['python']}; {packages}",
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
        "The stream is filled directly with XADD (fields as core/store/lua/*.lua write them), then "
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


def _range_cores(figures):
    c = figures.get("cpu_cores")
    if not c:
        return ""
    return (f"; cores: API {c['api']:.2f}, MariaDB {c['mariadb']:.2f}, clients {c.get('clients', 0):.2f}, "
            f"other tenants {c.get('others', 0):.2f}")


def _range(results, figures):
    r = results["range"]
    sizes = r["sizes"]
    if not sizes:
        return "## /dashboard/range: buckets vs the old scan vs SQLite\n\nNo store was measured."
    first = sizes[0]["preload"]["shape"]
    clients = sizes[0]["concurrent"]["clients"]
    preload_rows = []
    for s in sizes:
        p = s["preload"]
        preload_rows.append((
            f"{s['events']:,}", f"+{p['added']:,}", p["generate_s"], p["rebuild_s"], p["total_s"],
            " / ".join(_n(p["buckets"].get(span)) for span in ("1", "60", "3600", "86400")),
            _n(p["table_mib"].get("events"), 1), _n(p["table_mib"].get("range_buckets"), 1)))
    rows = []
    for s in sizes:
        at = f"{s['events']:,}"
        seq, conc, inp = s["sequential"], s["concurrent"], s["in_process"]
        warm = s.get("warmup")
        if warm:
            rows.append((at, f"(cold API: warm-up, {warm['clients']} clients × {warm['per_client']})",
                         warm["queries"], _n(warm["p50_ms"], 1), _n(warm["p99_ms"], 1),
                         _n(warm["max_ms"], 1), warm["errors"], "not counted: opens connections, grows pools"))
        rows.append((at, "buckets, API, one at a time", seq["queries"], _n(seq["p50_ms"], 1),
                     _n(seq["p99_ms"], 1), _n(seq["max_ms"], 1), seq["errors"],
                     f"{seq['queries_per_s']} queries/s" + _range_cores(seq)))
        rows.append((at, f"buckets, API, {conc['clients']} clients × {conc['per_client']}", conc["queries"],
                     _n(conc["p50_ms"], 1), _n(conc["p99_ms"], 1), _n(conc["max_ms"], 1), conc["errors"],
                     f"{conc['queries_per_s']} queries/s" + _range_cores(conc)))
        b, scan = inp["buckets"], inp["scan"]
        rows.append((at, "buckets, in-process (range_buckets.summarize)", b["queries"], _n(b["p50_ms"], 1),
                     _n(b["p99_ms"], 1), _n(b["max_ms"], 1), "–", ""))
        rows.append((at, "old scan, in-process (event_store.scan_summary)", scan["queries"],
                     _n(scan["p50_ms"], 1), _n(scan["p99_ms"], 1), _n(scan["max_ms"], 1),
                     f"{scan['timeouts']} stopped",
                     "all windows" if scan["complete"] else
                     f"first {scan['queries'] + scan['timeouts']} of {scan['wanted']} windows "
                     f"({scan['budget_s']} s budget)"))
        q = s["sqlite"]
        if "skipped" in q:
            rows.append((at, "SQLite, in-process", "–", "–", "–", "–", "–", q["skipped"]))
        else:
            rows.append((at, "SQLite, in-process (SQLiteInterface.dashboard_range)", q["queries"],
                         _n(q["p50_ms"], 1), _n(q["p99_ms"], 1), _n(q["max_ms"], 1), "–",
                         ("all windows" if q["complete"] else
                          f"first {q['queries']} of {q['wanted']} windows ({q['budget_s']} s budget)")
                         + f"; copied in {q['copy_s']} s"))
    checks = []
    for s in sizes:
        inp, seq, q = s["in_process"], s["sequential"], s["sqlite"]
        text = (f"- {s['events']:,} events: buckets vs old scan **{inp['mismatches']} mismatches** in "
                f"{inp['compared']} windows; API vs in-process buckets {seq['differs_from_in_process']} "
                f"differences in {seq['queries']} answers")
        if "skipped" not in q:
            text += f"; SQLite vs buckets {q['differs_from_buckets']} differences in {q['queries']}"
        checks.append(text)
    kinds = sizes[-1]["in_process"]
    kind_rows = [(kind, b["queries"], _n(b["p50_ms"], 2), _n(b["max_ms"], 2),
                  kinds["scan"]["by_kind"].get(kind, {}).get("queries", 0),
                  _n(kinds["scan"]["by_kind"].get(kind, {}).get("p50_ms"), 1),
                  _n(kinds["scan"]["by_kind"].get(kind, {}).get("max_ms"), 1))
                 for kind, b in kinds["buckets"]["by_kind"].items()]
    targets = [(v["target"], v["measured"], {True: "yes", False: "**no**", None: "–"}[v["met"]])
               for v in verdicts(results) if v["target"].startswith("range")]
    stores = ", ".join(f"{s['events']:,}" for s in sizes)
    parts = [
        "## /dashboard/range: buckets vs the old scan vs SQLite\n",
        f"**Stores.** {stores} events over 30 days "
        f"({r['from']} to {r['to']} UTC), spread unevenly: a daily cycle (quiet nights, busy "
        f"afternoons, an evening peak), quieter weekends, day and hour noise, "
        f"{len(first['bursts'])} bursts (8–40× the rate for 1–30 minutes, mostly one hot symbol) "
        f"and {len(first['outages'])} outages with no events; symbols a–z Zipf-like plus an hourly "
        f"trending symbol. Busiest hour {_n(first['busiest_hour_conversations'])} conversations, "
        f"quietest {_n(first['quietest_hour_conversations'])} (at the first size). ~2/3 initials, "
        "~1/3 followups (conversation_ts = their initial's ts, ts 0.1 s–30 min later). "
        "**How they are preloaded**: not through the API; rows are generated by MariaDB itself "
        "(benchmarks/range_store.py): a per-minute table of the shape drawn in Python, joined "
        "with the Sequence engine (`seq_0_to_N`) in `INSERT ... SELECT` chunks of ~400k "
        "conversations, every field a CRC32/MD5 function of the conversation number; then "
        "`core.range_buckets.rebuild`. Each bigger store grows the previous one.\n",
        _table(("store", "added", "generate s", "rebuild s", "total s",
                "buckets 1 s / 1 min / 1 h / 1 day", "og.events MiB", "range_buckets MiB"), preload_rows),
        f"\n**Windows.** {r['windows']['distinct']:,} distinct windows (as the API parses them), seeded, "
        "the same at every size: " + ", ".join(f"{k} {v}" for k, v in sorted(r["windows"]["kinds"].items()))
        + ". The in-process runs, the old scan and SQLite get exactly the windows of the "
        "one-at-a-time API run; the concurrent clients and the overload get others. API: "
        f"gunicorn (redis backend, {results['plan'].get('range_clients', clients)} clients = threads "
        "with a keep-alive http.client connection each) reading the store as user og.\n",
        _table(("store", "what", "queries", "p50 ms", "p99 ms", "max ms", "errors", "note"), rows),
        "\n### Targets\n",
        _table(("target", "measured", "met"), targets),
        "\n### Correctness\n",
        "\n".join(checks),
        "\n### Latency by kind of window, biggest store (in-process)\n",
        _table(("kind", "windows", "buckets p50 ms", "buckets max ms", "windows scanned",
                "old scan p50 ms", "old scan max ms"), kind_rows),
    ]
    o = sizes[-1].get("overload")
    if o:
        parts += [
            f"\n### Overload: {o['clients']} clients, one distinct window each, at once "
            f"({sizes[-1]['events']:,} events)\n",
            f"Answers: {o['statuses']} (200: {o['ok']}, 503: {o['unavailable_503']}, other: "
            f"{o['other']}); the first came {o['answers'][0][0] if o.get('answers') else '–'} s and "
            f"the last {o['burst_s']} s after the burst started; latency p50 "
            f"{_n(o['p50_ms'], 1)} ms, p99 {_n(o['p99_ms'], 1)} ms, max {_n(o['max_ms'], 1)} ms. "
            f"MariaDB (information_schema.PROCESSLIST, user og, COMMAND = 'Query', sampled every "
            f"50 ms): at most **{o['max_running_queries']}** queries running at once; "
            + ("none seen running after the last answer."
               if not o["running_after_burst_s"] else
               f"still some running **{o['running_after_burst_s']} s** after the last answer.")]
    if "range" in figures:
        parts.append(f"\n![range]({figures['range']})")
    return "\n".join(parts)


CLUSTER_VARIANTS = {
    "single": ("(a)", "single Redis, P=1 (reference)"),
    "cluster": ("(b)", "cluster, P={p}, WAIT 0"),
    "cluster+wait1": ("(c)", "cluster, P={p}, WAIT 1"),
}


def _rounds(values, fmt=_n):
    return ", ".join(fmt(v) for v in values)


def _cluster(results, figures):
    c = results["cluster"]
    s = c["summary"]
    plan = results["plan"]
    p = c["partitions"]
    names = {label: f"{tag} {what.format(p=p)}" for label, (tag, what) in CLUSTER_VARIANTS.items()}
    flow_rows, cost_rows = [], []
    for label, row in s["flow"].items():
        flow_rows.append((
            names.get(label, label), _n(row["ok_per_s"]), _rounds(row["rounds_ok_per_s"]),
            _x(row.get("vs_single")) if label != "single" else "–",
            _x(row.get("vs_cluster")) if label == "cluster+wait1" else "–",
            _n(row["p50_ms"], 1), _n(row["p99_ms"], 1), _n(row["p999_ms"], 1),
            _n(row["errors"]), _n(row["status_503"]), _n(row["unexpected_statuses"]),
            _n(row["generator_cores"], 2)))
        k = s["cost"][label]
        cost_rows.append((
            names.get(label, label), _n(k["script_calls_per_s"]), _n(k["api_cores"], 2),
            f"{k['redis_cores']:.2f} ({k['redis_master_cores']:.2f} + {k['redis_replica_cores']:.2f})"
            if k["redis_cores"] is not None else "–",
            _n(k["others_cores"], 2), _n(k["redis_us_per_call"], 1),
            f"**{_n(k['calls_per_redis_core'])}**", _rounds(k["rounds_calls_per_redis_core"]),
            _n(k["calls_per_master_core"]), _n(k["api_us_per_2xx"])))
    flow = s["flow"]

    def ratio_text(label, reference, what):
        row = flow.get(label)
        if not row or row.get(f"vs_{reference}") is None:
            return None
        rounds = _rounds(row[f"vs_{reference}_rounds"], lambda v: "–" if v is None else f"{v:.2f}")
        return f"{what} **{row[f'vs_{reference}']:.2f}×** (per round {rounds})"

    ratios = [t for t in (ratio_text("cluster", "single", "(b)/(a)"),
                          ratio_text("cluster+wait1", "single", "(c)/(a)"),
                          ratio_text("cluster+wait1", "cluster", "(c)/(b)")) if t]
    drain_rows = []
    for label, d in s["drain"].items():
        drain_rows.append((
            "cluster, one worker" if label == "cluster" else "single Redis, one worker",
            d["partitions"], _n(d["backlog"]), f"**{_n(d['events_per_s'])}**",
            _rounds(d["rounds_events_per_s"]), _x(d.get("vs_single")) if label != "single" else "–",
            d["worker_cpu_us_per_event"], _n(d["worker_cores"], 2), _n(d["mariadb_cores"], 2),
            _n(d["redis_cores"], 2), f"{_n(d.get('mean_batch'))} / {_n(d.get('max_batch'))}",
            _n(d["fill_per_s"]), "ok" if d["ok"] else "**mismatch**"))
    checks = s["checks"]
    bad = [k for k in checks if not k["ok"]]
    if bad:
        check_text = (f"**Checks FAILED** for {len(bad)} of {len(checks)} windows: "
                      + "; ".join(f"round {k['round']} {k['label']}: {k}" for k in bad))
    else:
        check_text = (
            f"**Checks**: {len(checks)} windows, {_n(sum(k['stored'] for k in checks))} events: "
            "after each, og.events gained exactly what the API appended to the streams (XINFO "
            "STREAM entries-added summed over the partitions), at least every 200 wrk saw, "
            "nothing was left undrained, no answer was other than 2xx or 503 "
            f"({_n(sum(k['status_503'] for k in checks))} 503s in all), and the cluster stayed "
            "healthy (3 masters, a replica each in sync: no failover).")
    nodes = ", ".join(f"{n['port']} {n['role']}" + (f" of partitions {n['partitions']}"
                                                     if "partitions" in n else "")
                      for n in c["nodes"])
    idle = c.get("idle_cores")
    idle_text = (f"Idle, with no load, the cluster's nodes used {idle['masters'] + idle['replicas']:.3f} "
                 f"cores (masters {idle['masters']:.3f}, replicas {idle['replicas']:.3f}: cluster "
                 f"bus, replication pings, cron) and single Redis {idle['single']:.3f}; the "
                 "figures below include that baseline.\n" if idle else "")
    return "\n".join([
        "## Redis Cluster vs single Redis\n",
        f"A private Redis Cluster of 6 nodes on loopback, 3 masters + 1 replica each ({nodes}; "
        f"cluster-node-timeout {c['node_timeout_ms']} ms; every node, like the single Redis, "
        f"with AOF fsynced every second), OG_STREAM_PARTITIONS={p} (about {p // 3} partitions "
        "per master); the single Redis is the stack's own. All on the same 2 cores as the API "
        "and wrk. Request path: the conversation flow with wrk `-t1 -c64` pinned to core 1, "
        f"{plan['duration']} s windows, the same gunicorn settings as throughput, ingest worker "
        f"stopped during the window (backlog drained and checked afterwards); {plan['rounds']} "
        "round(s), each (a), (b), (c) then the two drains; medians over rounds, ratios of "
        "medians. *WAIT 1*: OG_REDIS_WAIT_REPLICAS=1, each node's pipeline is followed by "
        "`WAIT 1` before its writes are answered.\n",
        _table(("variant", "2xx/s (median)", "per round", "vs (a)", "vs (b)", "p50 ms", "p99 ms",
                "p99.9 ms", "errors", "503", "other non-2xx", "wrk cores"), flow_rows),
        "\nRatios: " + "; ".join(ratios) + ".\n" if ratios else "",
        "### Redis CPU per script call\n",
        "Each /initial and /followup is one EVALSHA (answers 200/404/409: *calls/s*). Redis "
        "cores: utime+stime from /proc/<pid>/stat around the window, summed over all nodes "
        "(masters + replicas; for (a) the one redis-server). *Calls per Redis core* = calls/s "
        "÷ Redis cores: how many script calls one core of Redis serves here (replicas "
        "included; *per master core* leaves the replicas' apply work out). The API is the "
        "bottleneck on this machine (see API cores), so these are costs at the load the API "
        "can make, not Redis' ceiling. " + idle_text,
        _table(("variant", "calls/s", "API cores", "Redis cores (masters + replicas)",
                "other tenants", "Redis µs/call", "calls per Redis core", "per round",
                "calls per master core", "API µs/2xx"), cost_rows),
        "\n### Drain: one worker, the same backlog\n",
        "The same entries (same seed each round) XADDed straight into the streams: on the "
        f"cluster spread over the {p} partitions' streams by uuid (as the API spreads them), "
        "on single Redis into its one stream; then `python -m ingest run --burst`, timed by "
        "the worker's own *starting*/*stopped* log lines (as the drain scenario). Redis cores: "
        "all nodes. Events per batch: from the worker's debug lines (*flushed N events*); on "
        "a cluster one read takes an equal share of OG_INGEST_BATCH_SIZE from each "
        "partition's stream (ingest/worker.py `_poll`), one pipelined read per node.\n",
        _table(("store", "partitions", "backlog", "events/s (median)", "per round", "vs single",
                "worker CPU µs/event", "worker cores", "MariaDB cores", "Redis cores",
                "events per batch mean / max", "XADD fill/s", "og.events"), drain_rows),
        "",
        check_text,
    ] + ([f"\n![cluster]({figures['cluster']})"] if "cluster" in figures else []))


def _ms_added(value):
    return "–" if value is None else f"{value:+.1f} ms"


def _us_added(value):
    return "–" if value is None else f"{value:+.0f} µs"


def _ratios(values):
    return _rounds(values, lambda v: "–" if v is None else f"{v:.2f}")


def _proxy(results, figures):
    p = results["proxy"]
    s = p["summary"]
    plan = results["plan"]
    rows = []
    for label, row in s["flow"].items():
        k = s["cost"][label]
        proxied = label.endswith("+nginx")
        backend = label[:-len("+nginx")] if proxied else label
        pair = s["proxy"].get(backend, {})
        rows.append((
            f"{backend}, " + ("(b) nginx → gunicorn (unix socket)" if proxied
                              else "(a) gunicorn direct (TCP)"),
            _n(row["ok_per_s"]), _rounds(row["rounds_ok_per_s"]),
            _x(pair.get("vs_direct")) if proxied else "–",
            _n(row["p50_ms"], 1), _n(row["p99_ms"], 1), _n(row["p999_ms"], 1),
            _n(row["errors"]), _n(row["generator_cores"], 2), _n(k["api_cores"], 2),
            _n(k["nginx_cores"], 2) if proxied else "–", _n(k["others_cores"], 2),
            _n(k["api_us_per_2xx"]), f"**{_n(k['nginx_us_per_request'])}**" if proxied else "–",
            _n(k["all_us_per_2xx"])))
    lines = []
    for backend, d in s["proxy"].items():
        lines.append(
            f"- **{backend}**: (b)/(a) **{_x(d['vs_direct'])}** (ratio of the medians; median of "
            f"the per-round ratios {_x(d['vs_direct_median_of_rounds'])}; per round "
            f"{_ratios(d['vs_direct_rounds'])}); latency p50 {_ms_added(d['p50_added_ms'])}, "
            f"p99 {_ms_added(d['p99_added_ms'])}. nginx used **{_n(d['nginx_us_per_request'])} µs "
            f"of CPU per request** ({_n(d['nginx_cores'], 2)} cores). CPU per 2xx, direct → "
            f"proxied: API {_n(d['api_us_per_2xx_direct'])} → {_n(d['api_us_per_2xx_proxied'])} µs, "
            f"all {_n(d['all_us_per_2xx_direct'])} → {_n(d['all_us_per_2xx_proxied'])} µs "
            f"({_us_added(d['added_us_per_2xx'])}): "
            f"cost ratio {_x(d['cost_ratio'])} (per round {_ratios(d['cost_ratio_rounds'])}), "
            "the throughput ratio to expect with equal CPU.")
    to_null = s.get("redis_vs_null", {})
    if to_null:
        lines.append("- redis / null: " + "; ".join(
            f"{'through nginx' if way == 'proxied' else 'direct'} {_x(v['vs_null'])} "
            f"(per round {_ratios(v['vs_null_rounds'])})" for way, v in to_null.items()) + ".")
    checks = s["checks"]
    bad = [c for c in checks if not c["ok"]]
    logged = sum(c["nginx_error_log_lines"] for c in checks)
    events = [c["events"] for c in checks if c.get("events")]
    if bad:
        check_text = (f"**Checks FAILED** for {len(bad)} of {len(checks)} windows: "
                      + "; ".join(f"round {c['round']} {c['label']}: "
                                  + str({k: v for k, v in c.items() if k != 'nginx_error_log'})
                                  for c in bad))
    else:
        check_text = (
            f"**Checks**: {len(checks)} windows (warm-ups included): every answer 2xx, no "
            "socket error or timeout; after each redis window og.events gained exactly what the "
            "API appended to the stream, at least every 200 wrk saw, and nothing was left "
            f"undrained ({len(events)} windows, {_n(sum(e['stored'] for e in events))} events).")
    check_text += (f" nginx's error.log (level warn) gained {logged} line(s) during the windows"
                   + (" (results.json, `proxy.windows[].check.nginx_error_log`)." if logged else "."))
    return "\n".join([
        "## nginx in front of gunicorn vs gunicorn direct\n",
        "What the reverse proxy of `make run` costs. One run, rounds interleaved: in each round "
        "null and redis, each (a) gunicorn direct on a loopback TCP port, exactly as the "
        "throughput scenario runs it, and (b) the same gunicorn.conf.py and settings on a unix "
        "socket (OG_GUNICORN_BIND=unix:PATH) behind the project's nginx "
        "(provision/nginx.conf.template rendered by provision/nginx_conf.py as `make run` "
        "renders it: 2 workers, 16 idle keep-alive connections to gunicorn per worker, "
        "request and response buffering), wrk pointed at nginx; the order within each pair "
        "alternates from round to round. The conversation flow with wrk `-t1 -c64` pinned "
        f"to core 1 (conversation.lua, as throughput), {p.get('duration_s', plan['duration'])} s "
        f"windows after a {plan['warmup']} s warm-up, {p.get('rounds', plan['rounds'])} "
        "round(s); medians over rounds. redis: the request path, ingest worker stopped during "
        "the window (backlog drained and checked afterwards), as throughput's *redis* row. "
        "nginx shares the 2 cores with gunicorn, Redis, MariaDB and wrk, so every µs it uses "
        "is taken from the API. *nginx µs/request*: nginx's master and workers' CPU "
        "(/proc/<pid>/stat, as for gunicorn) per request wrk made; *API µs/2xx*: gunicorn's "
        "CPU per 2xx; *all µs/2xx*: API, nginx, Redis and MariaDB per 2xx.\n",
        "**The headline ratios to null** (the Targets above, the throughput section, "
        "benchmarks/README.md) **stay gunicorn-direct**: wrk straight at gunicorn's TCP "
        "port, on null as on redis. This section says only what the proxy in front of it "
        "costs.\n",
        _table(("backend, way", "2xx/s (median)", "per round", "(b)/(a)", "p50 ms", "p99 ms",
                "p99.9 ms", "errors", "wrk cores", "API cores", "nginx cores", "other tenants",
                "API µs/2xx", "nginx µs/request", "all µs/2xx"), rows),
        "",
        "\n".join(lines),
        "",
        check_text,
    ])


def _page(results):
    p = results["page"]
    s, one = p["summary"], p["one_page"]
    rows = []
    for label, row in s["flow"].items():
        c = s["cpu_cores"][label]
        rows.append([label, _n(row["ok_per_s"]), ", ".join(_n(v) for v in row["rounds_ok_per_s"]),
                     _n(row["p50_ms"], 1), _n(row["p99_ms"], 1), _n(row["errors"]),
                     _n(c["api"], 2), _n(c["redis"], 2), _n(c["mariadb"], 2), _n(c["ingest"], 2),
                     _n(c["others"], 2)])
    kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(one["by_kind"].items()))
    loaded = ", ".join(f"{kind} {count}" for kind, count in sorted(one["at_load"].items()))
    # Results from before the page asked the overview for its window have no
    # requests_per_refresh: two requests then, the overview and /dashboard/range.
    if p.get("requests_per_refresh", 2) == 1:
        asks = "one request"
        watched = "/dashboard/overview?lower=..&upper=.. for today (the range dashboard in it)"
    else:
        asks = "two requests"
        watched = "/dashboard/overview and /dashboard/range for today"
    return "\n".join([
        "## The page: what watching costs\n",
        f"**One open page** (headless Chromium on `/`, redis backend, worker running): "
        f"{one['requests']} requests in {one['seconds']} s after loading = "
        f"**{one['requests_per_s']:.3f} requests/s** ({kinds}); server/page/page.js plans "
        f"{p['planned_requests_per_s']:.3f}/s ({asks} every {p['refresh_ms'] / 1000:g} s, "
        f"none while the tab is hidden). Loading it: {loaded}, plus the document.\n",
        f"**{p['watchers']} open pages**, simulated with wrk (`watchers.lua`: one connection per "
        f"page asking exactly a page's refresh requests, {watched}, at its interval), beside "
        "the conversation flow "
        f"(`conversation.lua`, `-t1 -c64`); {p['rounds']} interleaved round(s) of "
        f"{p['duration_s']} s windows, worker running: write throughput with watchers / "
        f"without = **{_x(s['with_vs_without'])}** (per round: {_ratios(s['with_vs_without_rounds'])}). "
        f"The watchers asked {_n(s['watcher_requests_per_s'], 1)} requests/s, p99 "
        f"{_n(s['watcher_p99_ms'], 1)} ms, statuses {s['watcher_statuses']}, errors "
        f"{s['watcher_errors']}. This host is shared (*other tenants* below), so 2xx/s moves "
        "with what they take; the CPU the stack spends per write is steadier: "
        f"{_n(s['us_per_2xx'].get('flow'))} µs without watchers, "
        f"{_n(s['us_per_2xx'].get('flow+watchers'))} µs with them, a cost ratio of "
        f"**{_x(s['cost_ratio'])}** (per round: {_ratios(s['cost_ratio_rounds'])}): the "
        "throughput to expect with watchers, relative to without, when the API is CPU-bound "
        "and gets the same CPU.\n",
        _table(("window", "2xx/s (median)", "per round", "p50 ms", "p99 ms", "errors",
                "API cores", "Redis", "MariaDB", "worker", "other tenants"), rows),
        "",
        "og.events checks after every window: " + ("all passed" if s["checks_ok"] else "**FAILED**")
        + " (see results.json).",
    ])


def _operations(results):
    o = results["operations"]
    s = o["summary"]
    plan = results["plan"]
    parts = ["## Operating costs of issue 11: the uuid filter, rebuild under load, the uuid index\n"]
    f = s.get("filter")
    if f:
        on, off = f["per"]["filter on"], f["per"]["filter off"]
        rows = []
        for label, row in f["flow"].items():
            k = f["per"][label]
            rows.append((label, _n(k["seen_bits"]), _n(row["ok_per_s"]), _rounds(row["rounds_ok_per_s"]),
                         _n(row["p50_ms"], 1), _n(row["p99_ms"], 1), _n(row["errors"]),
                         _n(k["api_cores"], 2), _n(k["redis_cores"], 3), _n(k["others_cores"], 2),
                         _n(k["us_per_2xx"]), _n(k["redis_us_per_call"], 1),
                         f"{_n(k['aof_bytes_per_write'])} ({k.get('aof_windows', '–')})",
                         _n(k["used_memory_mib_after"], 1)))
        parts += [
            "### (a) The uuid filter on /initial\n",
            f"The conversation flow (wrk `conversation.lua`, `-t1 -c64` pinned to core 1, "
            f"{o.get('duration_s', plan['duration'])} s windows after a {plan['warmup']} s "
            f"warm-up), request path (worker stopped during the window, drained and checked "
            f"after), {o.get('rounds', plan['rounds'])} interleaved round(s), the order "
            "alternating; the Redis store emptied (FLUSHALL) before each window, since the "
            "size the first process records (og:{p}:seen:bits) wins over OG_UUID_FILTER_MB. "
            "*filter on*: the default 32 MB; *filter off*: OG_UUID_FILTER_MB=0. *Redis µs/call*: "
            "Redis CPU per script call (200/404/409 answers, one EVALSHA each); *AOF B/write*: "
            "growth of the append-only file per accepted write, median of the windows without an "
            "AOF rewrite (their number in brackets: Redis rewrites the file each time it doubles "
            "past 64 MB, which a window at full rate can cause); *Redis MiB*: used_memory after the window.\n",
            _table(("window", "filter bits", "2xx/s (median)", "per round", "p50 ms", "p99 ms",
                    "errors", "API cores", "Redis cores", "other tenants", "all µs/2xx",
                    "Redis µs/call", "AOF B/write", "Redis MiB"), rows),
            f"\nOn / off: 2xx/s **{_x(f['on_vs_off'])}** (per round {_ratios(f['on_vs_off_rounds'])}); "
            f"CPU per write {_n(off['us_per_2xx'])} µs off, {_n(on['us_per_2xx'])} µs on: cost "
            f"ratio **{_x(f['cost_ratio'])}** (per round {_ratios(f['cost_ratio_rounds'])}), the "
            "throughput to expect with the filter, relative to without, at equal CPU. Redis µs "
            f"per call per round: on {_rounds(f['redis_us_per_call_rounds']['filter on'], lambda v: _n(v, 1))}, "
            f"off {_rounds(f['redis_us_per_call_rounds']['filter off'], lambda v: _n(v, 1))}. "
            "og.events checks: " + ("all passed." if f["checks_ok"] else "**FAILED** (results.json)."),
        ]
    if s.get("rebuild"):
        rows = []
        for store in o["rebuilds"]:
            for w in store["windows"]:
                p = w["phases"]
                rows.append((f"{store['events']:,}", w["round"], _n(w["events_in_store"]),
                             f"**{w['command_wall_s']:.2f}**", _n(p.get("create_tables_s"), 2),
                             _n(p.get("range_buckets_s"), 2), w["range_bucket_days"],
                             _n(p.get("uuid_filter_s"), 2), f"**{w['fenced_s']:.3f}**",
                             _n(w["fence_seen_s"], 2),
                             f"**{_n(w['status_503'])}**", _n(w["writes_per_s_before"]),
                             _n(w["writes_per_s_during"]), _n(w["writes_per_s_after"]),
                             _x(w["after_vs_before"]), _n(w["max_undrained"]), w["settle_s"]))
        checks = [store["check"] for store in o["rebuilds"] if store["check"]]
        parts += [
            "\n### (b) `ingest rebuild` with the API serving and the worker running\n",
            "og.events holds a 30-day history of each size (benchmarks/range_store.py: made "
            "inside MariaDB, uneven, lowercase v4 uuids, ending an hour before the run) plus "
            "what the load adds; Redis is emptied first, so the uuid filter is refilled from "
            "og.events (outside the fence: the size is the one recorded). The conversation flow "
            f"runs {plan['ops_rebuild_before_s']} s before the rebuild, during it, and "
            f"{plan['ops_rebuild_after_s']} s after it (wrk stopped with SIGINT, which reports "
            "as at its end). The command is `python -m ingest rebuild`'s own "
            "main, its phases timed from inside: *range buckets* (range_buckets.rebuild, tables "
            "locked, the worker's inserts wait), *uuid filter* (SELECT of every initial's uuid, "
            "the bitmap, OR-ed in), then the fenced part; *fenced_s* is the command's own "
            "figure, *fence seen* the fence key's life as sampled every 0.1 s. *Writes/s*: "
            "entries appended to the stream per second (accepted writes), from the same samples; "
            "*after/before*: writes/s from 1 s after the rebuild to the end over the seconds "
            "before it (the worker catching up on what waited during the range-bucket part "
            "shares the cores). *503*: every 503 wrk saw in the window (the only 503 there is "
            "the fence's: the backlog stayed far below its mark).\n",
            _table(("store events", "round", "rows at start", "command s", "create_tables s",
                    "range buckets s", "days", "uuid filter s", "fenced_s", "fence seen s",
                    "503", "writes/s before", "during", "after",
                    "after/before", "max undrained", "drained after s"), rows),
            "\nog.events after each store's windows: " + (
                "gained exactly what the API appended, nothing undrained."
                if checks and all(c["ok"] for c in checks) else f"**check FAILED**: {checks}"),
        ]
    d = s.get("drain")
    if d:
        rows = [(label, _n(k["events_per_s"]), _rounds(k["rounds_events_per_s"]),
                 _n(k["worker_cpu_us_per_event"], 1), _n(k["mariadb_cpu_us_per_event"], 1),
                 _n(k["cpu_us_per_event"], 1), _rounds(k["rows_before"]))
                for label, k in d["per"].items()]
        adds = "; ".join(f"{_n(a['rows'])} rows in {a['seconds']:.2f} s" for a in d["add_index"])
        parts += [
            "\n### (c) The index events_by_uuid_key on the drain\n",
            f"One worker drains the same-size backlog ({_n(d['backlog'])} entries XADDed "
            "straight into the stream, other uuids each time) into the store (b) left, with the "
            "index and without it (dropped before the backlog is filled), rounds interleaved, "
            "the order alternating; both arms run `ingest run --burst` with "
            "event_store._upgrade_events disabled (it would add the index back at start). "
            "Events/s by the worker's own log (as the drain scenario); CPU: the worker process "
            f"(start-up included) and MariaDB (from the worker's start to {plan['ops_drain_tail_s']:g} s "
            "after it exited) per event. The store grows by each drain.\n",
            _table(("drain", "events/s (median)", "per round", "worker µs/event",
                    "MariaDB µs/event", "both µs/event", "rows before, per round"), rows),
            f"\nWith / without: events/s **{_x(d.get('with_vs_without'))}** (per round "
            f"{_ratios(d.get('with_vs_without_rounds', []))}); CPU cost ratio "
            f"**{_x(d.get('cost_ratio'))}** (per round {_ratios(d.get('cost_ratio_rounds', []))}: "
            "CPU per event without over with). Adding the index online (`ALTER TABLE events ADD "
            "INDEX events_by_uuid_key (uuid_key), ALGORITHM=INPLACE, LOCK=NONE`, what the first worker "
            f"start on an older store runs before it drains): {adds}. Every drain stored its "
            "backlog exactly and left the index as it found it: "
            + ("yes." if d["checks_ok"] else "**no** (results.json)."),
        ]
    return "\n".join(parts)


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
                          ("staleness", lambda: _staleness(results)),
                          ("range", lambda: _range(results, figures)),
                          ("cluster", lambda: _cluster(results, figures)),
                          ("proxy", lambda: _proxy(results, figures)),
                          ("page", lambda: _page(results)),
                          ("operations", lambda: _operations(results))):
        if name in results:
            parts += ["", section()]
    return "\n".join(parts) + "\n"
