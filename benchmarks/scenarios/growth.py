"""Growth: the cost per request on an empty and on a grown store."""
import time
from functools import partial

from benchmarks import load, plots
from benchmarks.report import get, listed, n, verdict, x
from benchmarks.summary import add_ratios, by_label, interleaved, medians
from benchmarks.targets import Target, checks_line, preload_store, progress, reset_store

# (backend, store): "main" is emptied before every round, "grown" preloaded once.
CONFIGS = (("sqlite", "main"), ("sqlite", "grown"), ("redis", "main"), ("redis", "grown"))
WORKLOADS = (("flow", "conversation flow"), ("reads", "/dashboard/symbol"))
# (row, the name of its ratio, the row it is a ratio to)
RATIOS = (("sqlite grown", "vs_empty", "sqlite empty"), ("redis grown", "vs_empty", "redis empty"),
          ("redis empty", "vs_sqlite", "sqlite empty"),
          ("redis grown", "vs_sqlite", "sqlite grown"))


def run(stack, plan):
    preloads = {}
    for backend in ("sqlite", "redis"):
        began = time.monotonic()
        reset_store(stack, backend, "grown")
        detail = preload_store(stack, backend, plan.growth_events, "grown")
        preloads[backend] = {"events": plan.growth_events, "rebuild": detail,
                             "seconds": round(time.monotonic() - began, 1)}
    result = {"preload": preloads,
              "windows": interleaved(plan.rounds, CONFIGS, partial(_window, stack, plan))}
    result["summary"] = summarize(result)
    return result


def _window(stack, plan, number, backend, store):
    with Target(stack, backend, store=store, reset=store == "main") as target:
        target.measure(lambda: load.start_wrk(target.url, "conversation", plan.warmup))
        flow = target.measure(lambda: load.start_wrk(target.url, "conversation", plan.duration))
        # No pause, range share 0: /dashboard/symbol only.
        reads = target.measure(lambda: load.start_wrk(target.url, "dashboard", plan.read_duration,
                                                      ("2000-01-01", "2000-01-01", 0, 0)))
        target.settle()
        check = target.check()
    progress(number, target.label, "conversation flow", flow)
    progress(number, target.label, "dashboard/symbol", reads)
    return {"round": number, "backend": backend, "store": "empty" if store == "main" else "grown",
            "flow": flow, "reads": reads, "check": check}


def summarize(result):
    groups = by_label(result["windows"], lambda w: f"{w['backend']} {w['store']}")
    table = {key: add_ratios(medians(groups, key), (), RATIOS) for key, _ in WORKLOADS}
    return {"workloads": table, "checks": [w["check"] for w in result["windows"] if w["check"]]}


def targets(result):
    flow = get(result, "summary", "workloads", "flow") or {}
    return [verdict("redis at the grown store ≥ 0.95× its empty throughput",
                    get(flow, "redis grown", "vs_empty"), 0.95, unit="×"),
            verdict("redis ≥ 10× sqlite at the grown store",
                    get(flow, "redis grown", "vs_sqlite"), 10, unit="×"),
            verdict("(for reference, not a target) redis vs sqlite at the empty store",
                    get(flow, "redis empty", "vs_sqlite"), 0, unit="×")]


def render(result, table):
    s, pre = result["summary"]["workloads"], result["preload"]
    rows = [(what, label, n(row["ok_per_s"]), listed(row["rounds_ok_per_s"]),
             x(row.get("vs_empty")), x(row.get("vs_sqlite")), n(row["p50_ms"], 1),
             n(row["p99_ms"], 1), n(row["p999_ms"], 1), n(row["errors"]))
            for key, what in WORKLOADS for label, row in s[key].items()]
    return ["## Growth: empty vs stored events", "",
            f"*grown*: {pre['redis']['events']:,} events stored before the rounds (sqlite "
            f"{pre['sqlite']['seconds']} s; redis {pre['redis']['seconds']} s: "
            f"`{pre['redis']['rebuild']}`).", "",
            *table(("workload", "store", "2xx/s", "per round", "vs empty", "redis vs sqlite",
                    "p50 ms", "p99 ms", "p99.9 ms", "errors"), rows), "",
            checks_line(result["summary"]["checks"])]


def plot(result, out):
    s, windows = result["summary"]["workloads"], result["windows"]
    figure, axes = plots.panels(3, 5, 4.2)
    for axis, (key, title) in zip(axes, WORKLOADS):
        for i, (label, row) in enumerate(s[key].items()):
            axis.bar(i, row["ok_per_s"], color=plots.COLORS[label.split()[0]])
            axis.annotate(x(row.get("vs_empty")) + " empty" if "grown" in label else "",
                          (i, row["ok_per_s"]), ha="center", va="bottom", fontsize=8)
        axis.set_xticks(range(len(s[key])), list(s[key]))
        axis.set(yscale="log", title=f"Growth: {title}", ylabel="2xx responses / s (median)")
    plots.percentiles(axes[2], [(f"{b} {st}", plots.median_round(
        [w for w in windows if w["backend"] == b and w["store"] == st], "flow"), style)
        for b in ("sqlite", "redis") for st, style in (("empty", "-"), ("grown", "--"))],
        f"Growth: empty vs {result['preload']['redis']['events']:,} stored events")
    return plots.save(figure, out, "growth")
