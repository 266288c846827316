"""Growth: the cost per request on an empty and on a grown store (method: benchmarks/README.md)."""
import logging
import time

from benchmarks import load, plots
from benchmarks.report import get, listed, n, verdict, x
from benchmarks.summary import median_of, ratio
from benchmarks.targets import Target, checks_line, preload_store, progress, reset_store

log = logging.getLogger("benchmarks")

CONFIGS = (("sqlite", "main"), ("sqlite", "grown"), ("redis", "main"), ("redis", "grown"))
"""(backend, store): "main" is emptied before every round, "grown" preloaded once."""


def run(stack, plan):
    preloads = {}
    for backend in ("sqlite", "redis"):
        began = time.monotonic()
        reset_store(stack, backend, "grown")
        detail = preload_store(stack, backend, plan.growth_events, "grown")
        preloads[backend] = {"events": plan.growth_events, "rebuild": detail,
                             "seconds": round(time.monotonic() - began, 1)}
    windows = [_window(stack, plan, backend, store, number)
               for number in range(1, plan.rounds + 1) for backend, store in CONFIGS]
    result = {"preload": preloads, "windows": windows}
    result["summary"] = summarize(result)
    return result


def _window(stack, plan, backend, store, number):
    with Target(stack, backend, store=store, reset=store == "main") as target:
        url = target.url
        target.measure(lambda: load.start_wrk(url, "conversation", plan.warmup))
        flow = target.measure(lambda: load.start_wrk(url, "conversation", plan.duration))
        reads = target.measure(lambda: load.start_wrk(url, "dashboard", plan.read_duration,
                                                      ("2000-01-01", "2000-01-01", 0, 0)))
        target.settle()
        check = target.check()
    progress(number, target.label, "conversation flow", flow)
    progress(number, target.label, "dashboard/symbol", reads)
    return {"round": number, "backend": backend, "store": "empty" if store == "main" else "grown",
            "flow": flow, "reads": reads, "check": check}


def _ratios(a, b):
    return ratio(a["ok_per_s"], b["ok_per_s"]), [ratio(p, q) for p, q in zip(a["rounds_ok_per_s"], b["rounds_ok_per_s"])]


def summarize(result):
    table = {}
    for workload in ("flow", "reads"):
        rows = {}
        for w in result["windows"]:
            rows.setdefault(f"{w['backend']} {w['store']}", []).append(w[workload]["results"][0])
        rows = {label: median_of(results) for label, results in rows.items()}
        for backend in ("sqlite", "redis"):
            grown = rows[f"{backend} grown"]
            grown["vs_empty"], grown["vs_empty_rounds"] = _ratios(grown, rows[f"{backend} empty"])
        for store in ("empty", "grown"):
            redis = rows[f"redis {store}"]
            redis["vs_sqlite"], redis["vs_sqlite_rounds"] = _ratios(redis, rows[f"sqlite {store}"])
        table[workload] = rows
    return {"workloads": table, "checks": [w["check"] for w in result["windows"] if w["check"]]}


def targets(result):
    flow = get(result, "summary", "workloads", "flow") or {}
    return [verdict("redis at the grown store ≥ 0.95× its empty throughput",
                    get(flow, "redis grown", "vs_empty"), 0.95, unit="×"),
            verdict("redis ≥ 10× sqlite at the grown store", get(flow, "redis grown", "vs_sqlite"), 10, unit="×"),
            verdict("(for reference, not a target) redis vs sqlite at the empty store",
                    get(flow, "redis empty", "vs_sqlite"), 0, unit="×")]


def render(result, table):
    s, pre = result["summary"]["workloads"], result["preload"]
    rows = [(what, label, n(row["ok_per_s"]), listed(row["rounds_ok_per_s"]), x(row.get("vs_empty")),
             x(row.get("vs_sqlite")), n(row["p50_ms"], 1), n(row["p99_ms"], 1), n(row["p999_ms"], 1),
             n(row["errors"]))
            for key, what in (("flow", "conversation flow"), ("reads", "/dashboard/symbol"))
            for label, row in s[key].items()]
    return ["## Growth: empty vs stored events", "",
            f"*grown*: {pre['redis']['events']:,} events stored before the rounds (sqlite "
            f"{pre['sqlite']['seconds']} s; redis {pre['redis']['seconds']} s: `{pre['redis']['rebuild']}`).", "",
            *table(("workload", "store", "2xx/s", "per round", "vs empty", "redis vs sqlite", "p50 ms",
                    "p99 ms", "p99.9 ms", "errors"), rows), "",
            checks_line(result["summary"]["checks"])]


def plot(result, out):
    s, windows = result["summary"]["workloads"], result["windows"]
    figure, axes = plots.panels(3, 5, 4.2)
    for axis, (key, title) in zip(axes, (("flow", "conversation flow"), ("reads", "/dashboard/symbol"))):
        labels = list(s[key])
        for i, label in enumerate(labels):
            axis.bar(i, s[key][label]["ok_per_s"], color=plots.COLORS[label.split()[0]])
            axis.annotate(x(s[key][label].get("vs_empty")) + " empty" if "grown" in label else "",
                          (i, s[key][label]["ok_per_s"]), ha="center", va="bottom", fontsize=8)
        axis.set_xticks(range(len(labels)), labels)
        axis.set(yscale="log", title=f"Growth: {title}", ylabel="2xx responses / s (median)")
    plots.percentiles(axes[2], [(f"{b} {st}", plots.median_round(
        [w for w in windows if w["backend"] == b and w["store"] == st], "flow"), style)
        for b in ("sqlite", "redis") for st, style in (("empty", "-"), ("grown", "--"))],
        f"Growth: empty vs {result['preload']['redis']['events']:,} stored events")
    return plots.save(figure, out, "growth")
