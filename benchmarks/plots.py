"""PNG plots of a run (matplotlib, Agg backend): throughput per backend, latency
percentiles, backlog over time, growth."""
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
                          ("lag", _lag), ("growth", _growth)):
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
