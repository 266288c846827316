"""Medians over rounds, ratios within a run, CPU per response."""
from statistics import median

# The processes under test, whose CPU a response costs (the load generators' is left out).
OURS = ("api", "redis", "mariadb", "ingest")


def interleaved(rounds, variants, window):
    """[window(round number, *variant)]: every variant once in each round, rounds in turn."""
    return [window(number, *variant) for number in range(1, rounds + 1) for variant in variants]


def by_label(windows, label):
    """{label(window): [its windows]}, labels in the order they first come."""
    groups = {}
    for window in windows:
        groups.setdefault(label(window), []).append(window)
    return groups


def medians(groups, key, index=0):
    """{label: median_of the index-th load of its windows' `key` window}."""
    return {label: median_of([w[key]["results"][index] for w in windows])
            for label, windows in groups.items()}


def med(values, digits=1):
    """The median of the known values (None if none), rounded."""
    known = [v for v in values if v is not None]
    return round(median(known), digits) if known else None


def median_of(results):
    """One backend's wrk results over rounds -> medians (errors and requests summed)."""
    row = {key: med([r[key] for r in results], digits)
           for key, digits in (("ok_per_s", 1), ("p50_ms", 2), ("p99_ms", 2), ("p999_ms", 2))}
    row.update({key: sum(r[key] for r in results) for key in ("errors", "requests")})
    row["generator_cores"] = med([r["generator_cores"] for r in results], 2)
    row["rounds_ok_per_s"] = [r["ok_per_s"] for r in results]
    return row


def ratio(a, b):
    return round(a / b, 3) if a is not None and b else None


def ratios(row, base):
    """(ratio of two median_of rows' 2xx/s, the same per round)."""
    return (ratio(row["ok_per_s"], base["ok_per_s"]),
            [ratio(a, b) for a, b in zip(row["rounds_ok_per_s"], base["rounds_ok_per_s"])])


def add_ratios(table, references=("null", "sqlite"), pairs=()):
    """table: {label: median_of(...)}; adds vs_<reference> to every row, and `name` to the
    `label` row of each (label, name, base) pair, of the medians and per round (name_rounds)."""
    pairs = [(label, f"vs_{reference}", reference)
             for reference in references if reference in table for label in table] + list(pairs)
    for label, name, base in pairs:
        table[label][name], table[label][f"{name}_rounds"] = ratios(table[label], table[base])
    return table


def us_per_2xx(window, roles=OURS, index=0):
    """CPU µs of `roles` per 2xx of the window's index-th load."""
    ok = window["results"][index]["ok_per_s"]
    cores = sum(window["cpu_cores"].get(role, 0.0) for role in roles)
    return round(cores / ok * 1e6, 1) if ok else None


def statuses(results):
    """Answers by status over several wrk results."""
    total = {}
    for result in results:
        for status, count in result["statuses"].items():
            total[int(status)] = total.get(int(status), 0) + count
    return total
