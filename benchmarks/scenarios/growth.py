"""Growth: does cost per request grow with stored data? The conversation flow (and
/dashboard/symbol reads) on an empty store and on one holding plan.growth_events
events, for sqlite and redis (request path, worker stopped), rounds interleaved.
"""
import logging
import time

from benchmarks import load
from benchmarks.summary import median_of, ratio
from benchmarks.targets import Target, preload_store, reset_store

log = logging.getLogger("benchmarks")

CONFIGS = (("sqlite", "main"), ("sqlite", "grown"), ("redis", "main"), ("redis", "grown"))
"""(backend, store): "main" is emptied before every round, "grown" preloaded once."""


def run(stack, plan):
    preloads = {}
    for backend in ("sqlite", "redis"):
        began = time.monotonic()
        reset_store(stack, backend, "grown")
        detail = preload_store(stack, backend, plan.growth_events, "grown")
        preloads[backend] = {"events": plan.growth_events, "seconds": round(time.monotonic() - began, 1),
                             "rebuild": detail}
        log.info("growth: %s preloaded with %d events in %.1f s", backend, plan.growth_events,
                 preloads[backend]["seconds"])
    windows = []
    for number in range(1, plan.rounds + 1):
        for backend, store in CONFIGS:
            windows.append(_window(stack, plan, backend, store, number))
    return {"preload": preloads, "windows": windows, "summary": summarize(windows)}


def _window(stack, plan, backend, store, number):
    with Target(stack, backend, store=store, reset=store == "main") as target:
        url = target.url
        target.measure(lambda: load.start_wrk(url, "conversation", plan.warmup))
        flow = target.measure(lambda: load.start_wrk(url, "conversation", plan.duration))
        reads = target.measure(lambda: load.start_wrk(url, "dashboard", plan.read_duration,
                                                      ("2000-01-01", "2000-01-01", 0, 0)))
        target.settle()
        check = target.check()
    for what, window in (("conversation flow", flow), ("dashboard/symbol", reads)):
        result = window["results"][0]
        log.info("round %d %-13s %-18s %8.0f ok/s  p50 %s  p99 %s  p99.9 %s ms  errors %d",
                 number, target.label, what, result["ok_per_s"], result["p50_ms"],
                 result["p99_ms"], result["p999_ms"], result["errors"])
    return {"round": number, "backend": backend, "store": "empty" if store == "main" else "grown",
            "flow": flow, "reads": reads, "check": check}


def summarize(windows):
    table = {}
    for workload in ("flow", "reads"):
        rows = {}
        for w in windows:
            rows.setdefault(f"{w['backend']} {w['store']}", []).append(w[workload]["results"][0])
        rows = {label: median_of(results) for label, results in rows.items()}
        for backend in ("sqlite", "redis"):
            grown, empty = rows[f"{backend} grown"], rows[f"{backend} empty"]
            grown["vs_empty"] = ratio(grown["ok_per_s"], empty["ok_per_s"])
            grown["vs_empty_rounds"] = [ratio(a, b) for a, b in
                                        zip(grown["rounds_ok_per_s"], empty["rounds_ok_per_s"])]
        for store in ("empty", "grown"):
            redis, sqlite = rows[f"redis {store}"], rows[f"sqlite {store}"]
            redis["vs_sqlite"] = ratio(redis["ok_per_s"], sqlite["ok_per_s"])
            redis["vs_sqlite_rounds"] = [ratio(a, b) for a, b in
                                         zip(redis["rounds_ok_per_s"], sqlite["rounds_ok_per_s"])]
        table[workload] = rows
    return {"workloads": table, "checks": [w["check"] for w in windows if w["check"]]}
