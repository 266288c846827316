"""Throughput and latency per backend, rounds interleaved: conversation flow, dashboard
reads, a mixed workload (the flow plus paced reads), and client/client.py.
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
        reads = target.measure(lambda: load.start_wrk(url, "dashboard", plan.read_duration,
                                                      (today, today)))
        _progress(target, number, "dashboard reads", reads["results"][0])
        mixed = target.measure(
            lambda: load.start_wrk(url, "conversation", plan.duration),
            lambda: load.start_wrk(url, "dashboard", plan.duration,
                                   (today, today, plan.read_delay_ms), plan.read_connections))
        mixed["settle_s"] = target.settle()
        _progress(target, number, "mixed: writes", mixed["results"][0])
        _progress(target, number, "mixed: reads", mixed["results"][1])
        check = target.check()
    return {"round": number, "backend": target.label, "flow": flow, "reads": reads,
            "mixed": mixed, "check": check}


def _progress(target, number, what, result):
    log.info("round %d %-13s %-18s %8.0f ok/s  p50 %7.2f  p99 %8.2f  p99.9 %8.2f ms  errors %d"
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
    cpu = {label: _median_cpu([w["flow"]["cpu_cores"] for w in windows if w["backend"] == label])
           for label in labels}
    lag = {label: max(w["flow"].get("backlog", {}).get("max_backlog", 0) for w in windows
                      if w["backend"] == label) for label in labels}
    return {"workloads": table, "flow_cpu_cores": cpu, "flow_max_backlog": lag,
            "checks": [w["check"] for w in windows if w["check"]] + [c["check"] for c in clients if c["check"]]}


def _median_cpu(samples):
    return {role: round(median(s[role] for s in samples), 2) for role in samples[0]}
