"""Generic plot helpers (matplotlib, Agg): panels, bars with min-max whiskers, latency by
percentile; each scenario's plot(result, out) draws its own figure with them."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend is chosen first)

COLORS = {"null": "#999999", "sqlite": "#d62728", "redis": "#1f77b4", "redis+ingest": "#2ca02c"}


def panels(count, width=6, height=4.5):
    figure, axes = plt.subplots(1, count, figsize=(width * count, height), squeeze=False)
    return figure, list(axes[0])


def save(figure, out, name):
    figure.tight_layout()
    figure.savefig(out / f"{name}.png", dpi=110)
    plt.close(figure)
    return [f"{name}.png"]


def bars(axis, groups, series, title, ylabel):
    """series: [(label, values per group, rounds per group or None, notes per group or None)]."""
    width = 0.8 / len(series)
    for i, (label, values, rounds, notes) in enumerate(series):
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        error = ([[v - min(r or [v]) for v, r in zip(values, rounds)],
                  [max(r or [v]) - v for v, r in zip(values, rounds)]] if rounds else None)
        drawn = axis.bar(xs, values, width, label=label if len(series) > 1 else None,
                         color=COLORS.get((label.split() or [""])[0]), yerr=error, capsize=2)
        for bar, note in zip(drawn, notes or []):
            if note:
                axis.annotate(note, (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                              ha="center", va="bottom", fontsize=8)
    axis.set_xticks(range(len(groups)), groups)
    axis.set_title(title)
    axis.set_ylabel(ylabel)
    if len(series) > 1:
        axis.legend(fontsize=8)


def percentiles(axis, curves, title):
    """curves: [(label, wrk result, line style)]: latency by percentile, log scales."""
    for label, result, style in curves:
        points = [(p, ms) for p, ms in result["percentiles_ms"] if p >= 10]
        axis.plot([1 / (1 - p / 100) for p, _ in points], [max(ms, 0.01) for _, ms in points],
                  style, label=label, color=COLORS.get(label.split()[0]))
    axis.set_xscale("log")
    axis.set_yscale("log")
    ticks = [50, 90, 99, 99.9, 99.99]
    axis.set_xticks([1 / (1 - p / 100) for p in ticks], [f"p{p:g}" for p in ticks])
    axis.minorticks_off()
    axis.set_ylabel("latency, ms")
    axis.set_title(title)
    axis.grid(True, which="major", alpha=0.3)
    axis.legend(fontsize=8)


def median_round(windows, key):
    """The wrk result of the window whose throughput is the median."""
    ordered = sorted(windows, key=lambda w: w[key]["results"][0]["ok_per_s"])
    return ordered[len(ordered) // 2][key]["results"][0]
