"""Throughput and latency per backend, rounds interleaved: the conversation flow on an
empty store; dashboard reads and a mixed workload (the flow plus paced reads) on a store
holding plan.read_events events of today; and client/client.py on an empty store.
"""
import logging
from statistics import median
from datetime import datetime, timezone

from benchmarks import load
from benchmarks.summary import add_ratios, median_of
from benchmarks.targets import Target

log = logging.getLogger("benchmarks")

BACKENDS = (("null", False), ("sqlite", False), ("redis", False), ("redis", True))
"""(backend, ingest worker running during the windows)."""
CLIENT_BOUND_S = 600


def run(stack, plan):
    windows = []
    for number in range(1, plan.rounds + 1):
        for backend, worker in BACKENDS:
            windows.append(_round(stack, plan, backend, worker, number))
    clients = [_client(stack, plan, backend, worker) for backend, worker in BACKENDS]
    return {"windows": windows, "client": clients, "summary": summarize(windows, clients)}


def _round(stack, plan, backend, worker, number):
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    with Target(stack, backend, worker) as target:
        url = target.url
        target.measure(lambda: load.start_wrk(url, "conversation", plan.warmup))
        target.settle()
        flow = target.measure(lambda: load.start_wrk(url, "conversation", plan.duration))
        flow["settle_s"] = target.settle()
        _progress(target, number, "conversation flow", flow["results"][0])
        flow_check = target.check()
    with Target(stack, backend, worker, preload=plan.read_events) as target:
        url = target.url
        reads = target.measure(lambda: load.start_wrk(url, "dashboard", plan.read_duration,
                                                      (today, today)))
        _progress(target, number, "dashboard reads", reads["results"][0])
        mixed = target.measure(
            lambda: load.start_wrk(url, "conversation", plan.mixed_duration),
            lambda: load.start_wrk(url, "dashboard", plan.mixed_duration,
                                   (today, today, plan.read_delay_ms), plan.read_connections))
        mixed["settle_s"] = target.settle()
        _progress(target, number, "mixed: writes", mixed["results"][0])
        _progress(target, number, "mixed: reads", mixed["results"][1])
        mixed_check = target.check()
    return {"round": number, "backend": target.label, "flow": flow, "reads": reads,
            "mixed": mixed, "checks": [c for c in (flow_check, mixed_check) if c]}


def _progress(target, number, what, result):
    log.info("round %d %-13s %-18s %8.0f ok/s  p50 %s  p99 %s  p99.9 %s ms  errors %d"
             "  (wrk %.2f cores)", number, target.label, what, result["ok_per_s"],
             result["p50_ms"], result["p99_ms"], result["p999_ms"], result["errors"],
             result["generator_cores"])


def _client(stack, plan, backend, worker):
    with Target(stack, backend, worker) as target:
        summary = load.run_client(target.url, plan.client_conversations,
                                  plan.client_concurrency, CLIENT_BOUND_S)
        target.accepted += summary["statuses"].get("200", 0)
        target.settle()
        summary["check"] = target.check()
    summary["backend"] = target.label
    log.info("client.py %-13s %8.0f req/s  p50 %7.2f  p99 %8.2f ms  errors %d  (client %.2f cores)",
             target.label, summary["requests_per_s"], summary["p50_ms"], summary["p99_ms"],
             summary["errors"], summary["generator_cores"])
    return summary


def summarize(windows, clients):
    labels = list(dict.fromkeys(w["backend"] for w in windows))
    table = {}
    for workload, index in (("flow", 0), ("reads", 0), ("mixed_writes", 0), ("mixed_reads", 1)):
        key = workload.split("_")[0]
        table[workload] = add_ratios({
            label: median_of([w[key]["results"][index] for w in windows if w["backend"] == label])
            for label in labels})
    cpu = {label: _median_cpu([w["flow"] for w in windows if w["backend"] == label])
           for label in labels}
    if "null" in cpu:
        for row in cpu.values():
            row["cost_vs_null"] = round(cpu["null"]["us_per_response"] / row["us_per_response"], 3)
    lag = {label: max(w["flow"].get("backlog", {}).get("max_backlog", 0) for w in windows
                      if w["backend"] == label) for label in labels}
    settle = {label: max(w["flow"]["settle_s"] or 0 for w in windows if w["backend"] == label)
              for label in labels}
    return {"workloads": table, "flow_cpu_cores": cpu, "flow_max_backlog": lag,
            "flow_max_settle_s": settle,
            "checks": [c for w in windows for c in w["checks"]] + [c["check"] for c in clients if c["check"]]}


OURS = ("api", "redis", "mariadb", "ingest")
"""The processes under test, whose CPU a response costs (wrk's is left out)."""


def _us_per_response(window, roles):
    ok = window["results"][0]["ok_per_s"]
    return sum(window["cpu_cores"][role] for role in roles) / ok * 1e6 if ok else 0


def _median_cpu(windows):
    """Median cores per role, and CPU µs per 2xx response: the API's, and all of ours.

    On a shared host the throughput of a window depends on how much CPU other tenants
    took; the CPU cost of a response does not, so cost ratios are steadier than
    throughput ratios."""
    samples = [w["cpu_cores"] for w in windows]
    cores = {role: round(median(s[role] for s in samples), 2) for role in samples[0]}
    cores["api_us_per_response"] = round(median(_us_per_response(w, ("api",)) for w in windows))
    cores["us_per_response"] = round(median(_us_per_response(w, OURS) for w in windows))
    return cores
