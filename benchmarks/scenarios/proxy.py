"""nginx in front of gunicorn vs gunicorn direct: what the proxy of `make run` costs (method:
benchmarks/README.md)."""
import logging

from benchmarks import load
from benchmarks.report import listed, n, x
from benchmarks.summary import med, median_of, ratio
from benchmarks.targets import Target

log = logging.getLogger("benchmarks")

BACKENDS = ("null", "redis")
PROXIED = "+nginx"
"""The label suffix of a window served through nginx."""
OURS = ("api", "nginx", "redis", "mariadb", "ingest")
"""The processes a response costs CPU in (wrk's is left out)."""
ERROR_LOG_KEPT = 10
"""Lines of nginx's error.log kept per window in results.json (all are counted)."""


def label_of(backend, proxied):
    return backend + (PROXIED if proxied else "")


def order(number):
    """(backend, proxied) of round `number`'s windows: direct first in odd rounds."""
    first = number % 2 == 0  # proxied first in even rounds
    return [(backend, proxied) for backend in BACKENDS for proxied in (first, not first)]


def run(stack, plan):
    windows = []
    for number in range(1, plan.proxy_rounds + 1):
        for backend, proxied in order(number):
            windows.append(_window(stack, plan, backend, proxied, number))
    return {"rounds": plan.proxy_rounds, "duration_s": plan.proxy_duration,
            "connections": load.CONNECTIONS, "windows": windows,
            "summary": summarize({"windows": windows})}


# --- one window -------------------------------------------------------------------------

def _error_log_size(target):
    if not target.proxy:
        return 0
    try:
        return target.api.nginx.error_log_path.stat().st_size
    except OSError:
        return 0


def _error_log_since(target, offset):
    """Lines nginx's error.log (level warn and above) gained since `offset`."""
    if not target.proxy:
        return []
    try:
        with open(target.api.nginx.error_log_path, "rb") as log_file:
            log_file.seek(offset)
            return log_file.read().decode(errors="replace").splitlines()
    except OSError:
        return []


def _window(stack, plan, backend, proxied, number):
    label = label_of(backend, proxied)
    with Target(stack, backend, label=label, proxy=proxied) as target:
        url = target.url
        mark = _error_log_size(target)
        warmup = target.measure(lambda: load.start_wrk(url, "conversation", plan.warmup))
        target.settle()
        flow = target.measure(lambda: load.start_wrk(url, "conversation", plan.proxy_duration))
        errors_logged = _error_log_since(target, mark)
        flow["settle_s"] = target.settle()
        events = target.check()
    flow.pop("backlog", None)  # worker stopped: the backlog is just what was appended
    result = flow["results"][0]
    statuses = {}
    for r in (warmup["results"][0], result):
        for status, count in r["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
    check = {
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "non_2xx": sum(v for k, v in statuses.items() if not 200 <= k < 300),
        "socket_errors": sum(v for r in (warmup["results"][0], result)
                             for k, v in r["socket_errors"].items() if k != "status"),
        "nginx_error_log_lines": len(errors_logged),
        "nginx_error_log": errors_logged[:ERROR_LOG_KEPT],
        "events": events,
    }
    check["ok"] = (check["non_2xx"] == 0 and check["socket_errors"] == 0
                   and (events is None or events["ok"]))
    if not check["ok"]:
        log.warning("%s: check FAILED: %s", label, {k: v for k, v in check.items()
                                                     if k != "nginx_error_log"})
    if errors_logged:
        log.warning("%s: nginx's error.log gained %d line(s), e.g. %s", label,
                    len(errors_logged), errors_logged[0])
    derived = derive(flow)
    _progress(number, label, result, flow["cpu_cores"], derived)
    return {"round": number, "label": label, "backend": backend, "proxied": proxied,
            "flow": flow, "derived": derived, "check": check}


def _progress(number, label, result, cores, derived):
    nginx = (f", nginx {cores['nginx']:.2f} cores = {derived['nginx_us_per_request']:.0f} µs/request"
             if "nginx" in cores else "")
    log.info("round %d %-12s %8.0f ok/s  p50 %s  p99 %s  p99.9 %s ms  errors %d  "
             "(API %.2f cores%s; others %.2f; wrk %.2f)", number, label, result["ok_per_s"],
             result["p50_ms"], result["p99_ms"], result["p999_ms"], result["errors"],
             cores["api"], nginx, cores["others"], result["generator_cores"])


def _per(cores, rate):
    """CPU µs per unit, from cores used and units/s."""
    return round(cores / rate * 1e6, 1) if rate else None


def derive(window):
    """What a request costs in CPU, per part, from one window's wrk result and cores."""
    result, cores = window["results"][0], window["cpu_cores"]
    requests_per_s = result["requests"] / result["seconds"] if result["seconds"] else 0
    ok = result["ok_per_s"]
    nginx = cores.get("nginx", 0.0)
    ours = sum(cores.get(role, 0.0) for role in OURS)
    return {
        "requests_per_s": round(requests_per_s, 1),
        "api_cores": cores["api"],
        "nginx_cores": nginx,
        "others_cores": cores["others"],
        "machine_cores": cores["machine"],
        "api_us_per_2xx": _per(cores["api"], ok),
        "nginx_us_per_request": _per(nginx, requests_per_s),
        "nginx_us_per_2xx": _per(nginx, ok),
        "all_us_per_2xx": _per(ours, ok),
    }


# --- summary ----------------------------------------------------------------------------

def _by_round(windows, label):
    return {w["round"]: w for w in windows if w["label"] == label}


def summarize(result):
    windows = result["windows"]
    labels = list(dict.fromkeys(w["label"] for w in windows))
    flow, cost = {}, {}
    for label in labels:
        mine = [w for w in windows if w["label"] == label]
        row = median_of([w["flow"]["results"][0] for w in mine])
        row["non_2xx"] = sum(w["check"]["non_2xx"] for w in mine)
        row["socket_errors"] = sum(w["check"]["socket_errors"] for w in mine)
        row["nginx_error_log_lines"] = sum(w["check"]["nginx_error_log_lines"] for w in mine)
        flow[label] = row
        derived = [w["derived"] for w in mine]
        cost[label] = {key: med([d[key] for d in derived], 2 if key.endswith("cores") else 1)
                       for key in derived[0]}
        cost[label]["rounds_nginx_us_per_request"] = [d["nginx_us_per_request"] for d in derived]
    proxy = {}
    for backend in BACKENDS:
        direct, proxied = backend, label_of(backend, True)
        if direct not in flow or proxied not in flow:
            continue
        a, b = _by_round(windows, direct), _by_round(windows, proxied)
        rounds = [ratio(b[n]["flow"]["results"][0]["ok_per_s"], a[n]["flow"]["results"][0]["ok_per_s"])
                  for n in sorted(set(a) & set(b))]
        cost_rounds = [ratio(a[n]["derived"]["all_us_per_2xx"], b[n]["derived"]["all_us_per_2xx"])
                       for n in sorted(set(a) & set(b))]
        fa, fb, ca, cb = flow[direct], flow[proxied], cost[direct], cost[proxied]
        proxy[backend] = {
            "direct": direct, "proxied": proxied,
            "vs_direct": ratio(fb["ok_per_s"], fa["ok_per_s"]),
            "vs_direct_rounds": rounds,
            "vs_direct_median_of_rounds": med(rounds, 3),
            "p50_added_ms": _diff(fb["p50_ms"], fa["p50_ms"]),
            "p99_added_ms": _diff(fb["p99_ms"], fa["p99_ms"]),
            "nginx_us_per_request": cb["nginx_us_per_request"],
            "nginx_cores": cb["nginx_cores"],
            "api_us_per_2xx_direct": ca["api_us_per_2xx"],
            "api_us_per_2xx_proxied": cb["api_us_per_2xx"],
            "all_us_per_2xx_direct": ca["all_us_per_2xx"],
            "all_us_per_2xx_proxied": cb["all_us_per_2xx"],
            "added_us_per_2xx": _diff(cb["all_us_per_2xx"], ca["all_us_per_2xx"]),
            # Direct CPU per 2xx over proxied: the throughput ratio to expect at equal CPU.
            "cost_ratio": ratio(ca["all_us_per_2xx"], cb["all_us_per_2xx"]),
            "cost_ratio_rounds": cost_rounds,
        }
    # redis's ratio to null, both ways: the README's headline is the direct one.
    to_null = {}
    for proxied in (False, True):
        r, n = label_of("redis", proxied), label_of("null", proxied)
        if r in flow and n in flow:
            a, b = _by_round(windows, n), _by_round(windows, r)
            to_null["proxied" if proxied else "direct"] = {
                "vs_null": ratio(flow[r]["ok_per_s"], flow[n]["ok_per_s"]),
                "vs_null_rounds": [ratio(b[k]["flow"]["results"][0]["ok_per_s"],
                                         a[k]["flow"]["results"][0]["ok_per_s"])
                                   for k in sorted(set(a) & set(b))]}
    return {"flow": flow, "cost": cost, "proxy": proxy, "redis_vs_null": to_null,
            "checks": [dict(w["check"], label=w["label"], round=w["round"]) for w in windows]}


def _diff(a, b):
    return None if a is None or b is None else round(a - b, 2)


def _added(value, unit):
    return "–" if value is None else f"{value:+.1f} {unit}"


def render(p, table):
    s = p["summary"]
    rows = []
    for label, row in s["flow"].items():
        k, proxied = s["cost"][label], label.endswith(PROXIED)
        backend = label[:-len(PROXIED)] if proxied else label
        rows.append((f"{backend}, " + ("(b) nginx → gunicorn (unix socket)" if proxied else "(a) gunicorn direct (TCP)"),
                     n(row["ok_per_s"]), listed(row["rounds_ok_per_s"]),
                     x(s["proxy"].get(backend, {}).get("vs_direct")) if proxied else "–",
                     n(row["p50_ms"], 1), n(row["p99_ms"], 1), n(row["p999_ms"], 1), n(row["errors"]),
                     n(row["generator_cores"], 2), n(k["api_cores"], 2), n(k["nginx_cores"], 2) if proxied else "–",
                     n(k["others_cores"], 2), n(k["api_us_per_2xx"]),
                     f"**{n(k['nginx_us_per_request'])}**" if proxied else "–", n(k["all_us_per_2xx"])))
    lines = [f"- **{b}**: (b)/(a) **{x(d['vs_direct'])}** (median of the per-round ratios "
             f"{x(d['vs_direct_median_of_rounds'])}; per round {listed(d['vs_direct_rounds'], x)}); latency p50 "
             f"{_added(d['p50_added_ms'], 'ms')}, p99 {_added(d['p99_added_ms'], 'ms')}. nginx used "
             f"**{n(d['nginx_us_per_request'])} µs of CPU per request** ({n(d['nginx_cores'], 2)} cores). CPU per 2xx, "
             f"direct → proxied: API {n(d['api_us_per_2xx_direct'])} → {n(d['api_us_per_2xx_proxied'])} µs, all "
             f"{n(d['all_us_per_2xx_direct'])} → {n(d['all_us_per_2xx_proxied'])} µs ({_added(d['added_us_per_2xx'], 'µs')}): "
             f"cost ratio {x(d['cost_ratio'])} (per round {listed(d['cost_ratio_rounds'], x)})."
             for b, d in s["proxy"].items()]
    if s.get("redis_vs_null"):
        lines.append("- redis / null: " + "; ".join(
            f"{'through nginx' if way == 'proxied' else 'direct'} {x(v['vs_null'])} (per round "
            f"{listed(v['vs_null_rounds'], x)})" for way, v in s["redis_vs_null"].items()) + ".")
    checks = s["checks"]
    bad = [c for c in checks if not c["ok"]]
    logged = sum(c["nginx_error_log_lines"] for c in checks)
    return ["## nginx in front of gunicorn vs gunicorn direct", "",
            f"{p.get('rounds')} round(s) of {p.get('duration_s')} s windows. The headline ratios to null "
            "(Targets, throughput) stay gunicorn-direct; this says what the proxy in front costs.", "",
            *table(("backend, way", "2xx/s (median)", "per round", "(b)/(a)", "p50 ms", "p99 ms", "p99.9 ms",
                    "errors", "wrk cores", "API cores", "nginx cores", "other tenants", "API µs/2xx",
                    "nginx µs/request", "all µs/2xx"), rows), "", *lines, "",
            (f"**Checks FAILED** for {len(bad)} of {len(checks)} windows." if bad else
             f"**Checks**: {len(checks)} windows: every answer 2xx, og.events complete after each redis window.")
            + f" nginx's error.log gained {logged} line(s)."]
