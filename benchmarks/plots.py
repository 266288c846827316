"""PNG plots of a run (matplotlib, Agg backend): throughput per backend, latency
percentiles, backlog over time, growth, range latency by store size, cluster vs single."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend is chosen first)

COLORS = {"null": "#999999", "sqlite": "#d62728", "redis": "#1f77b4", "redis+ingest": "#2ca02c"}
WORKLOADS = (("flow", "conversation flow"), ("reads", "dashboard reads"),
             ("mixed_writes", "mixed: writes"), ("mixed_reads", "mixed: reads"))


def draw(results, out):
    """Write the plots the results allow; return {name: file name}."""
    figures = {}
    for name, painter in (("throughput", _throughput), ("latency", _latency),
                          ("lag", _lag), ("growth", _growth), ("range", _range),
                          ("cluster", _cluster)):
        figure = painter(results)
        if figure is not None:
            figure.tight_layout()
            figure.savefig(out / f"{name}.png", dpi=110)
            plt.close(figure)
            figures[name] = f"{name}.png"
    return figures


def _throughput(results):
    if "throughput" not in results:
        return None
    table = results["throughput"]["summary"]["workloads"]
    clients = {c["backend"]: c["requests_per_s"] for c in results["throughput"]["client"]}
    backends = list(table["flow"])
    groups = [label for _, label in WORKLOADS] + ["client.py"]
    figure, axes = plt.subplots(figsize=(10, 4.8))
    width = 0.8 / len(backends)
    for i, backend in enumerate(backends):
        values = [table[key][backend]["ok_per_s"] for key, _ in WORKLOADS] + [clients.get(backend, 0)]
        lows = [v - min(table[key][backend]["rounds_ok_per_s"]) for (key, _), v in zip(WORKLOADS, values)] + [0]
        highs = [max(table[key][backend]["rounds_ok_per_s"]) - v for (key, _), v in zip(WORKLOADS, values)] + [0]
        xs = [g + (i - (len(backends) - 1) / 2) * width for g in range(len(groups))]
        bars = axes.bar(xs, values, width, label=backend, color=COLORS.get(backend),
                        yerr=[lows, highs], capsize=2)
        ratio = table["flow"][backend].get("vs_null")
        if ratio is not None:
            axes.annotate(f"{ratio:.2f}x", (bars[0].get_x() + width / 2, values[0]),
                          ha="center", va="bottom", fontsize=8, xytext=(0, 3),
                          textcoords="offset points")
    axes.set_xticks(range(len(groups)), groups)
    axes.set_ylabel("2xx responses / s (median of rounds; bars: min-max)")
    axes.set_title("Throughput per backend (flow labels: ratio to null)")
    axes.legend()
    return figure


def _percentile_axes(axes, title):
    axes.set_xscale("log")
    axes.set_yscale("log")
    ticks = [50, 90, 99, 99.9, 99.99]
    axes.set_xticks([1 / (1 - p / 100) for p in ticks], [f"p{p:g}" for p in ticks])
    axes.minorticks_off()
    axes.set_ylabel("latency, ms")
    axes.set_title(title)
    axes.grid(True, which="major", alpha=0.3)


def _plot_percentiles(axes, result, label, color=None, style="-"):
    points = [(p, ms) for p, ms in result["percentiles_ms"] if p >= 10]
    if not points:
        return
    axes.plot([1 / (1 - p / 100) for p, _ in points], [max(ms, 0.01) for _, ms in points],
              style, label=label, color=color)


def _median_round(windows, key):
    ordered = sorted(windows, key=lambda w: w[key]["results"][0]["ok_per_s"])
    return ordered[len(ordered) // 2][key]["results"][0]


def _latency(results):
    panels = [name for name in ("throughput", "growth") if name in results]
    if not panels:
        return None
    figure, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
    for axis, name in zip(axes[0], panels):
        windows = results[name]["windows"]
        if name == "throughput":
            for backend in dict.fromkeys(w["backend"] for w in windows):
                _plot_percentiles(axis, _median_round([w for w in windows if w["backend"] == backend], "flow"),
                                  backend, COLORS.get(backend))
            _percentile_axes(axis, "Conversation flow, 64 connections (median round)")
        else:
            for backend in ("sqlite", "redis"):
                for store, style in (("empty", "-"), ("grown", "--")):
                    chosen = [w for w in windows if w["backend"] == backend and w["store"] == store]
                    _plot_percentiles(axis, _median_round(chosen, "flow"), f"{backend} {store}",
                                      COLORS[backend], style)
            events = results["growth"]["preload"]["redis"]["events"]
            _percentile_axes(axis, f"Growth: empty vs {events:,} stored events")
        axis.legend()
    return figure


def _lag(results):
    panels = []
    if "throughput" in results:
        panels.append("whole")
    if "drain" in results:
        panels.append("drain")
    if not panels:
        return None
    figure, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.2), squeeze=False)
    for axis, panel in zip(axes[0], panels):
        if panel == "whole":
            for w in results["throughput"]["windows"]:
                if w["backend"] != "redis+ingest":
                    continue
                for key, style in (("flow", "-"), ("mixed", "--")):
                    samples = w[key]["backlog"]["samples"]
                    axis.plot([s["t"] for s in samples], [s["lag"] + s["pending"] for s in samples],
                              style, label=f"round {w['round']} {key}")
            axis.set_title("Whole system: undrained events during the load")
            axis.set_xlabel("seconds into the window")
            axis.set_ylabel("stream entries not yet written (lag + pending)")
        else:
            drain = results["drain"]
            for run in drain["batch_sizes"] + [drain["headline"]]:
                samples = run["samples"]
                axis.plot([s["t"] for s in samples], [s["length"] for s in samples],
                          label=f"batch {run['batch_size']}, {run['backlog']:,} events")
            axis.set_title("Drain of a backlog by one worker")
            axis.set_xlabel("seconds")
            axis.set_ylabel("stream length (acknowledged entries are trimmed)")
        axis.legend(fontsize=8)
    return figure


def _growth(results):
    if "growth" not in results:
        return None
    table = results["growth"]["summary"]["workloads"]
    figure, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    for axis, (key, title) in zip(axes, (("flow", "conversation flow"), ("reads", "/dashboard/symbol"))):
        labels = list(table[key])
        values = [table[key][label]["ok_per_s"] for label in labels]
        bars = axis.bar(labels, values, color=[COLORS[label.split()[0]] for label in labels])
        for bar, label in zip(bars, labels):
            ratio = table[key][label].get("vs_empty")
            if ratio is not None:
                axis.annotate(f"{ratio:.2f}x empty", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                              ha="center", va="bottom", fontsize=8)
        axis.set_yscale("log")
        axis.set_title(f"Growth: {title}")
        axis.set_ylabel("2xx responses / s (median)")
    return figure


RANGE_SERIES = (
    # (label, color, how to find the figures in one size of results["range"]["sizes"])
    ("buckets, API, one at a time", "#1f77b4", lambda s: s["sequential"]),
    ("buckets, API, {clients} clients", "#2ca02c", lambda s: s["concurrent"]),
    ("buckets, in-process", "#17becf", lambda s: s["in_process"]["buckets"]),
    ("old scan, in-process", "#ff7f0e", lambda s: s["in_process"]["scan"]),
    ("SQLite, in-process", "#d62728", lambda s: s["sqlite"]),
)


def _range(results):
    if "range" not in results or not results["range"].get("sizes"):
        return None
    r = results["range"]
    sizes = r["sizes"]
    overload = sizes[-1].get("overload")
    figure, axes = plt.subplots(1, 2 if overload else 1, figsize=(13 if overload else 7.5, 6),
                                squeeze=False)
    axis = axes[0][0]
    clients = sizes[0]["concurrent"].get("clients")
    for label, color, pick in RANGE_SERIES:
        points = [(s["events"], pick(s)) for s in sizes if "skipped" not in pick(s)]
        points = [(n, f) for n, f in points if f.get("p50_ms") is not None]
        if not points:
            continue
        xs = [n for n, _ in points]
        name = label.format(clients=clients)
        axis.plot(xs, [f["p50_ms"] for _, f in points], "-o", color=color, label=f"{name} p50")
        axis.plot(xs, [f["p99_ms"] for _, f in points], "--s", color=color, label=f"{name} p99")
    for key, style in (("sequential_p99_ms", ":"), ("concurrent_p99_ms", "-.")):
        goal = r["targets"][key]
        axis.axhline(goal, color="#555555", linestyle=style, linewidth=0.8)
        axis.annotate(f"target {key.split('_')[0]} p99 < {goal} ms", (sizes[0]["events"], goal),
                      fontsize=7, color="#555555", xytext=(2, 2), textcoords="offset points")
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xticks([s["events"] for s in sizes], [f"{s['events']:,}" for s in sizes])
    axis.minorticks_off()
    axis.set_xlabel("events stored (30 uneven days)")
    axis.set_ylabel("latency per /dashboard/range query, ms")
    axis.set_title("Range dashboard: buckets vs old scan vs SQLite (same windows)")
    axis.grid(True, which="major", alpha=0.3)
    axis.legend(fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.13))
    if overload:
        axis = axes[0][1]
        samples = overload["samples"]
        axis.step([t for t, _ in samples], [n for _, n in samples], where="post", color="#1f77b4")
        axis.axvline(0, color="#555555", linestyle=":", linewidth=0.8)
        axis.axvline(overload["burst_s"], color="#d62728", linestyle=":", linewidth=0.8)
        axis.set_xlabel("seconds from the burst (red: its last answer)")
        axis.set_ylabel("queries of user og running in MariaDB (sampled every 50 ms)")
        answered = axis.twinx()
        for status, color in (("200", "#2ca02c"), ("503", "#d62728")):
            times = [t for t, s in overload.get("answers", []) if s == status]
            if times:
                answered.step([0] + times, range(len(times) + 1), where="post", color=color,
                              linewidth=0.9, label=f"answers {status}")
        answered.set_ylabel("answers received (cumulative)")
        if answered.get_legend_handles_labels()[0]:
            answered.legend(fontsize=8, loc="center right")
        axis.set_title(f"Overload: {overload['clients']} distinct windows at once, "
                       f"{sizes[-1]['events']:,} events\n{overload['statuses']}", fontsize=10)
    return figure


CLUSTER_COLORS = {"single": "#1f77b4", "cluster": "#ff7f0e", "cluster+wait1": "#9467bd"}


def _bars(axis, labels, values, rounds, colors, notes):
    lows = [v - min(r) for v, r in zip(values, rounds)]
    highs = [max(r) - v for v, r in zip(values, rounds)]
    bars = axis.bar(range(len(labels)), values, 0.6, yerr=[lows, highs], capsize=3,
                    color=[colors.get(label) for label in labels])
    for bar, value, note in zip(bars, values, notes):
        if note:
            axis.annotate(note, (bar.get_x() + bar.get_width() / 2, value / 2), ha="center",
                          va="center", fontsize=9, color="white", fontweight="bold")
    axis.set_xticks(range(len(labels)), labels)


def _cluster(results):
    if "cluster" not in results or "summary" not in results["cluster"]:
        return None
    s = results["cluster"]["summary"]
    p = results["cluster"]["partitions"]
    figure, axes = plt.subplots(1, 3, figsize=(14, 4.6))
    labels = list(s["flow"])
    names = {"single": "single, P=1", "cluster": f"cluster, P={p}",
             "cluster+wait1": f"cluster, P={p}\nWAIT 1"}
    axis = axes[0]
    _bars(axis, [names.get(l, l) for l in labels], [s["flow"][l]["ok_per_s"] for l in labels],
          [s["flow"][l]["rounds_ok_per_s"] for l in labels],
          {names.get(l, l): CLUSTER_COLORS.get(l) for l in labels},
          [f"{s['flow'][l]['vs_single']:.2f}x" if s["flow"][l].get("vs_single") else "" for l in labels])
    axis.set_ylabel("2xx responses / s (median of rounds; bars: min-max)")
    axis.set_title("Conversation flow, request path (ratio to single)")
    axis = axes[1]
    calls = [s["cost"][l]["calls_per_redis_core"] or 0 for l in labels]
    rounds = [[v or 0 for v in s["cost"][l]["rounds_calls_per_redis_core"]] for l in labels]
    _bars(axis, [names.get(l, l) for l in labels], calls, rounds,
          {names.get(l, l): CLUSTER_COLORS.get(l) for l in labels},
          [f"{s['cost'][l]['redis_us_per_call']:.0f}\nµs/call" for l in labels])
    axis.set_ylabel("script calls / s per Redis core (all nodes)")
    axis.set_title("Redis CPU cost of a script call")
    axis = axes[2]
    drains = list(s["drain"])
    _bars(axis, [names.get(l, l) for l in drains], [s["drain"][l]["events_per_s"] for l in drains],
          [s["drain"][l]["rounds_events_per_s"] for l in drains],
          {names.get(l, l): CLUSTER_COLORS.get(l) for l in drains},
          [f"{s['drain'][l]['vs_single']:.2f}x" if s["drain"][l].get("vs_single") else "" for l in drains])
    axis.set_ylabel("events / s into og.events (median of rounds)")
    axis.set_title(f"Drain, one worker, {s['drain'][drains[0]]['backlog']:,} events")
    return figure
