"""Throughput and latency per backend, rounds interleaved."""
import logging
from datetime import datetime, timezone
from functools import partial

from benchmarks import load, plots
from benchmarks.report import get, listed, n, verdict, x
from benchmarks.summary import OURS, add_ratios, by_label, interleaved, med, medians, ratio, \
    us_per_2xx
from benchmarks.targets import Target, checks_line, progress

log = logging.getLogger("benchmarks")

# (backend, ingest worker running during the windows)
BACKENDS = (("null", False), ("sqlite", False), ("redis", False), ("redis", True))
CLIENT_BOUND_S = 600
# (name in the summary, window, which of its loads, label in the plot)
WORKLOADS = (("flow", "flow", 0, "conversation flow"), ("reads", "reads", 0, "dashboard reads"),
             ("mixed_writes", "mixed", 0, "mixed: writes"),
             ("mixed_reads", "mixed", 1, "mixed: reads"))


def run(stack, plan):
    result = {"windows": interleaved(plan.rounds, BACKENDS, partial(_round, stack, plan)),
              "client": [_client(stack, plan, *b) for b in BACKENDS]}
    result["summary"] = summarize(result)
    return result


def _round(stack, plan, number, backend, worker):
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    with Target(stack, backend, worker) as target:
        target.measure(lambda: load.start_wrk(target.url, "conversation", plan.warmup))
        target.settle()
        flow = target.measure(lambda: load.start_wrk(target.url, "conversation", plan.duration))
        flow["settle_s"] = target.settle()
        progress(number, target.label, "conversation flow", flow)
        checks = [target.check()]
    with Target(stack, backend, worker, preload=plan.read_events) as target:
        reads = target.measure(lambda: load.start_wrk(target.url, "dashboard", plan.read_duration,
                                                      (today, today)))
        progress(number, target.label, "dashboard reads", reads)
        mixed = target.measure(
            lambda: load.start_wrk(target.url, "conversation", plan.mixed_duration),
            lambda: load.start_wrk(target.url, "dashboard", plan.mixed_duration,
                                   (today, today, plan.read_delay_ms), plan.read_connections))
        mixed["settle_s"] = target.settle()
        progress(number, target.label, "mixed", mixed)
        checks.append(target.check())
    return {"round": number, "backend": target.label, "flow": flow, "reads": reads,
            "mixed": mixed, "checks": [c for c in checks if c]}


def _client(stack, plan, backend, worker):
    with Target(stack, backend, worker) as target:
        summary = load.run_client(target.url, plan.client_conversations,
                                  plan.client_concurrency, CLIENT_BOUND_S)
        target.accepted += summary["statuses"].get("200", 0)
        target.settle()
        summary["check"] = target.check()
    summary["backend"] = target.label
    log.info("client.py %-13s %8.0f req/s  p99 %8.2f ms  errors %d  (client %.2f cores)",
             target.label, summary["requests_per_s"], summary["p99_ms"], summary["errors"],
             summary["generator_cores"])
    return summary


def summarize(result):
    groups = by_label(result["windows"], lambda w: w["backend"])
    table = {name: add_ratios(medians(groups, key, index)) for name, key, index, _ in WORKLOADS}
    cpu = {}
    for label, windows in groups.items():
        flows = [w["flow"] for w in windows]
        cpu[label] = {role: med([f["cpu_cores"][role] for f in flows], 2)
                      for role in flows[0]["cpu_cores"]}
        cpu[label]["api_us_per_response"] = med([us_per_2xx(f, ("api",)) for f in flows], 0)
        cpu[label]["us_per_response"] = med([us_per_2xx(f, OURS) for f in flows], 0)
    for row in cpu.values():
        row["cost_vs_null"] = ratio(get(cpu, "null", "us_per_response"), row["us_per_response"])
    return {"workloads": table, "flow_cpu_cores": cpu,
            "flow_max_backlog": {label: max(get(w, "flow", "backlog", "max_backlog") or 0
                                            for w in ws) for label, ws in groups.items()},
            "flow_max_settle_s": {label: max(w["flow"]["settle_s"] or 0 for w in ws)
                                  for label, ws in groups.items()},
            "checks": [c for w in result["windows"] for c in w["checks"]]
            + [c["check"] for c in result["client"] if c["check"]]}


def _spread(summary, label):
    known = [r for r in get(summary, "workloads", "flow", label, "vs_null_rounds") or []
             if r is not None]
    cost = get(summary, "flow_cpu_cores", label, "cost_vs_null")
    return ((f" (rounds {min(known):.2f}–{max(known):.2f}" if known else " (")
            + (f"; CPU cost ratio {cost:.2f}×)" if cost is not None else ")"))


def targets(result):
    s = get(result, "summary")
    flow = get(s, "workloads", "flow") or {}
    return [verdict("redis request path ≥ 0.85× null (conversation flow, worker stopped)",
                    get(flow, "redis", "vs_null"), 0.85, unit="×" + _spread(s, "redis")),
            verdict("whole system (worker running) ≥ 0.80× null", get(flow, "redis+ingest",
                    "vs_null"), 0.80, unit="×" + _spread(s, "redis+ingest")),
            verdict("redis p99 < 50 ms at 64 connections (request path)",
                    get(flow, "redis", "p99_ms"), 50, "lower", " ms", "{:.1f}"),
            verdict("redis+ingest p99 < 50 ms at 64 connections",
                    get(flow, "redis+ingest", "p99_ms"), 50, "lower", " ms", "{:.1f}")]


WRK = ("backend", "2xx/s (median)", "per round", "vs null", "vs sqlite", "p50 ms", "p99 ms",
       "p99.9 ms", "errors", "wrk cores")
CPU = ("API cores", "Redis", "MariaDB", "worker", "other tenants", "API µs/2xx", "all µs/2xx",
       "cost ratio")


def _wrk_table(table, rows, cpu=None):
    lines = []
    for label, row in rows.items():
        lines.append([label, n(row["ok_per_s"]), listed(row["rounds_ok_per_s"]),
                      x(row.get("vs_null")), x(row.get("vs_sqlite")), n(row["p50_ms"], 1),
                      n(row["p99_ms"], 1), n(row["p999_ms"], 1), n(row["errors"]),
                      n(row["generator_cores"], 2)])
        if cpu:
            c = cpu[label]
            lines[-1] += [n(c[k], 2) for k in ("api", "redis", "mariadb", "ingest", "others")]
            lines[-1] += [n(c["api_us_per_response"]), n(c["us_per_response"]),
                          x(c.get("cost_vs_null"))]
    return table(WRK + (CPU if cpu else ()), lines)


def render(result, table):
    s, plan, w = result["summary"], result["plan"], result["summary"]["workloads"]
    null, lag = w["flow"].get("null"), s["flow_max_backlog"].get("redis+ingest")
    lines = ["## Throughput and latency", "",
             f"wrk `-t1 -c64` pinned to core 1, {plan['duration']} s windows, {plan['rounds']} "
             "interleaved round(s); medians over rounds.", "",
             "### Conversation flow (/initial, then /followup for half of the 200s), empty store",
             "", *_wrk_table(table, w["flow"], s["flow_cpu_cores"]), "",
             "### Dashboard reads (half /dashboard/symbol, half /dashboard/range over today)", "",
             f"On a store holding {plan['read_events']:,} events of today.", "",
             *_wrk_table(table, w["reads"]), "",
             "### Mixed: the conversation flow with paced dashboard reads beside it", "",
             f"A second wrk, {plan['read_connections']} connections pausing "
             f"{plan['read_delay_ms']} ms.", "", "Writes:", "",
             *_wrk_table(table, w["mixed_writes"]), "", "Reads:", "",
             *_wrk_table(table, w["mixed_reads"]), "",
             f"### client/client.py (`--concurrency {plan['client_concurrency']} --conversations "
             f"{plan['client_conversations']}`), one run each", "",
             *table(("backend", "req/s", "p50 ms", "p99 ms", "errors", "client cores",
                     "accuracy first/last tenth"),
                    [(c["backend"], n(c["requests_per_s"]), n(c["p50_ms"], 1), n(c["p99_ms"], 1),
                      n(c["errors"]), n(c["generator_cores"], 2),
                      f"{c['accuracy_first_tenth']} / {c['accuracy_last_tenth']}")
                     for c in result["client"]]), ""]
    if null:
        lines += [f"**The generator is not the limit.** Against null wrk used "
                  f"{null['generator_cores']:.2f} cores for {n(null['ok_per_s'])} responses/s; "
                  f"the API {s['flow_cpu_cores']['null']['api']:.2f}.", ""]
    if lag is not None:
        lines += [f"**Whole-system lag.** The undrained backlog peaked at {n(lag)} events; "
                  f"og.events had everything {s['flow_max_settle_s']['redis+ingest']} s after "
                  "the window.", ""]
    return lines + [checks_line(s["checks"])]


def plot(result, out):
    t, windows = result["summary"]["workloads"], result["windows"]
    clients = {c["backend"]: c["requests_per_s"] for c in result["client"]}
    figure, (axis,) = plots.panels(1, 10, 4.8)
    plots.bars(axis, [title for *_, title in WORKLOADS] + ["client.py"],
               [(b, [t[name][b]["ok_per_s"] for name, *_ in WORKLOADS] + [clients.get(b, 0)],
                 [t[name][b]["rounds_ok_per_s"] for name, *_ in WORKLOADS] + [None],
                 [x(t["flow"][b].get("vs_null"))]) for b in t["flow"]],
               "Throughput per backend (flow labels: ratio to null)",
               "2xx responses / s (median of rounds; bars: min-max)")
    names = plots.save(figure, out, "throughput")
    figure, (axis,) = plots.panels(1)
    plots.percentiles(axis, [(b, plots.median_round([w for w in windows if w["backend"] == b],
                                                    "flow"), "-") for b in t["flow"]],
                      "Conversation flow, 64 connections (median round)")
    names += plots.save(figure, out, "latency")
    figure, (axis,) = plots.panels(1)
    for w in (w for w in windows if w["backend"] == "redis+ingest"):
        for key, style in (("flow", "-"), ("mixed", "--")):
            if samples := get(w, key, "backlog", "samples"):
                axis.plot([p["t"] for p in samples], [p["lag"] + p["pending"] for p in samples],
                          style, label=f"round {w['round']} {key}")
    axis.set(title="Whole system: undrained events during the load",
             xlabel="seconds into the window",
             ylabel="stream entries not yet written (lag + pending)")
    return names + plots.save(figure, out, "lag")
