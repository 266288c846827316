"""Medians over rounds, ratios within a run, CPU per response."""
from statistics import median

OURS = ("api", "redis", "mariadb", "ingest")
"""The processes under test, whose CPU a response costs (the load generators' is left out)."""


def med(values, digits=1):
    """The median of the known values (None if none), rounded."""
    known = [v for v in values if v is not None]
    return round(median(known), digits) if known else None


def median_of(results):
    """One backend's wrk results over rounds -> medians (errors summed)."""
    return {"ok_per_s": med([r["ok_per_s"] for r in results]),
            "p50_ms": med([r["p50_ms"] for r in results], 2),
            "p99_ms": med([r["p99_ms"] for r in results], 2),
            "p999_ms": med([r["p999_ms"] for r in results], 2),
            "errors": sum(r["errors"] for r in results),
            "requests": sum(r["requests"] for r in results),
            "generator_cores": med([r["generator_cores"] for r in results], 2),
            "rounds_ok_per_s": [r["ok_per_s"] for r in results]}


def ratio(a, b):
    return round(a / b, 3) if a is not None and b else None


def add_ratios(table, references=("null", "sqlite")):
    """table: {label: median_of(...)}; adds vs_<reference>, of the medians and per round."""
    for reference in references:
        if reference not in table:
            continue
        base = table[reference]
        for row in table.values():
            row[f"vs_{reference}"] = ratio(row["ok_per_s"], base["ok_per_s"])
            row[f"vs_{reference}_rounds"] = [
                ratio(a, b) for a, b in zip(row["rounds_ok_per_s"], base["rounds_ok_per_s"])]
    return table


def us_per_2xx(window, roles=OURS, index=0):
    """CPU µs of `roles` per 2xx of the window's index-th load."""
    ok = window["results"][index]["ok_per_s"]
    return round(sum(window["cpu_cores"].get(role, 0.0) for role in roles) / ok * 1e6, 1) if ok else None


def statuses(results):
    """Answers by status over several wrk results."""
    total = {}
    for result in results:
        for status, count in result["statuses"].items():
            total[int(status)] = total.get(int(status), 0) + count
    return total
