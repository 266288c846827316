"""report.md: the machine, the targets, then each scenario's own section and plots
(the scenarios render them through `table`)."""
import importlib

from benchmarks.scenarios import SCENARIOS

MET = {True: "yes", False: "**no**", None: "–"}


def table(headers, rows):
    """A markdown table as a list of lines; None cells print as –."""
    cells = [[("–" if c is None else str(c)) for c in row] for row in rows]
    return (["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
            + ["| " + " | ".join(row) + " |" for row in cells])


def n(value, digits=0):
    """A figure with thousands separators; – when unknown."""
    if value is None:
        return "–"
    return f"{value:,.{digits}f}" if digits and isinstance(value, float) else f"{round(value):,}"


def x(value):
    return "–" if value is None else f"{value:.2f}×"


def listed(values, fmt=n):
    return ", ".join(fmt(v) for v in values)


def get(data, *path):
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def verdict(target, value, goal, better="higher", unit="", fmt="{:.2f}"):
    """(target, measured, met): a row of the Targets table."""
    if value is None:
        return target, "not measured", None
    return target, fmt.format(value) + unit, value >= goal if better == "higher" else value < goal


def targets_table(rows):
    return table(("target", "measured", "met"), [(t, m, MET[met]) for t, m, met in rows])


def modules():
    return {name: importlib.import_module(f"benchmarks.scenarios.{name}") for name in SCENARIOS}


def render(results, out):
    """report.md's text; each scenario's plots are written into `out` on the way."""
    m = results["machine"]
    lines = ["# Benchmark report", "",
             f"`{results['command']}` — started {results['started']}, took "
             f"{results['seconds']:.0f} s. Raw figures: results.json. How to read this: "
             "benchmarks/README.md.", "", "## Machine", "",
             f"- {m['nproc']} CPUs: {m['cpu_model']}; {m['memory_gib']} GiB RAM; kernel "
             f"{m['kernel']}; {m['os']}",
             f"- {m['redis']}; {m['mariadb']}; {m['wrk']}"
             + (f"; {m['nginx']}" if m.get("nginx") else "") + f"; Python {m['python']}; "
             + ", ".join(f"{k} {v}" for k, v in m["packages"].items()),
             f"- commit {m['git_commit']}; load average before {m['load_average_before']}, "
             f"after {m.get('load_average_after')} (the machine is shared: see *other tenants*)",
             "", "## Targets", ""]
    targets, sections = [], []
    for name, module in modules().items():
        result = results.get(name)
        if hasattr(module, "targets"):
            targets += module.targets(result)
        if result is None:
            continue
        result.setdefault("plan", results["plan"])
        sections += ["", *module.render(result, table)]
        for figure in (module.plot(result, out) if hasattr(module, "plot") else []):
            sections += ["", f"![{figure.split('.')[0]}]({figure})"]
        result.pop("plan")
    lines += targets_table(targets)
    for name, error in results.get("failed", {}).items():
        lines += ["", f"**Scenario {name} FAILED**: ```{error.strip()[-1500:]}```"]
    return "\n".join(lines + sections) + "\n"
