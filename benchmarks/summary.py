"""Medians over rounds and ratios between backends measured in the same run."""
from statistics import median


def _median(values, digits):
    known = [v for v in values if v is not None]
    return round(median(known), digits) if known else None


def median_of(results):
    """One backend's wrk results over rounds -> medians (errors summed)."""
    return {
        "ok_per_s": round(median(r["ok_per_s"] for r in results), 1),
        "p50_ms": _median([r["p50_ms"] for r in results], 2),
        "p99_ms": _median([r["p99_ms"] for r in results], 2),
        "p999_ms": _median([r["p999_ms"] for r in results], 2),
        "errors": sum(r["errors"] for r in results),
        "requests": sum(r["requests"] for r in results),
        "generator_cores": round(median(r["generator_cores"] for r in results), 2),
        "rounds_ok_per_s": [r["ok_per_s"] for r in results],
    }


def ratio(a, b):
    return round(a / b, 3) if b else None


def add_ratios(table, references=("null", "sqlite")):
    """table: {label: {"ok_per_s": ..., "rounds_ok_per_s": [...]}}. Adds, per reference,
    the ratio of medians and the ratio within each round (same round = same conditions)."""
    for reference in references:
        if reference not in table:
            continue
        base = table[reference]
        for row in table.values():
            row[f"vs_{reference}"] = ratio(row["ok_per_s"], base["ok_per_s"])
            row[f"vs_{reference}_rounds"] = [
                ratio(a, b) for a, b in zip(row["rounds_ok_per_s"], base["rounds_ok_per_s"])]
    return table
