"""nginx in front of gunicorn vs gunicorn direct: what the proxy of `make run` costs (method:
benchmarks/README.md)."""
import logging

from benchmarks import load
from benchmarks.report import listed, n, x
from benchmarks.summary import med, median_of, ratio, ratios, statuses, us_per_2xx
from benchmarks.targets import Target, progress

log = logging.getLogger("benchmarks")

BACKENDS = ("null", "redis")
PROXIED = "+nginx"  # the label suffix of a window served through nginx
OURS = ("api", "nginx", "redis", "mariadb", "ingest")  # what a response costs CPU in (not wrk)
ERROR_LOG_KEPT = 10  # lines of nginx's error.log kept per window in results.json (all counted)


def run(stack, plan):
    windows = []
    for number in range(1, plan.proxy_rounds + 1):
        first = number % 2 == 0  # direct first in odd rounds, proxied first in even ones
        windows += [_window(stack, plan, backend, proxied, number)
                    for backend in BACKENDS for proxied in (first, not first)]
    result = {"rounds": plan.proxy_rounds, "duration_s": plan.proxy_duration,
              "connections": load.CONNECTIONS, "windows": windows}
    return {**result, "summary": summarize(result)}


def _error_log(target):
    """nginx's error.log (level warn and above); empty when direct."""
    path = target.proxy and target.api.nginx.error_log_path
    return path.read_bytes() if path and path.exists() else b""


def _window(stack, plan, backend, proxied, number):
    label = backend + (PROXIED if proxied else "")
    with Target(stack, backend, label=label, proxy=proxied) as target:
        mark = len(_error_log(target))
        warmup = target.measure(lambda: load.start_wrk(target.url, "conversation", plan.warmup))
        target.settle()
        flow = target.measure(
            lambda: load.start_wrk(target.url, "conversation", plan.proxy_duration))
        logged = _error_log(target)[mark:].decode(errors="replace").splitlines()
        flow["settle_s"] = target.settle()
        events = target.check()
    flow.pop("backlog", None)  # worker stopped: the backlog is just what was appended
    results = (warmup["results"][0], flow["results"][0])
    answers = statuses(results)
    check = {"statuses": {str(k): v for k, v in sorted(answers.items())},
             "non_2xx": sum(v for k, v in answers.items() if not 200 <= k < 300),
             "socket_errors": sum(v for r in results for k, v in r["socket_errors"].items()
                                  if k != "status"),
             "nginx_error_log_lines": len(logged), "nginx_error_log": logged[:ERROR_LOG_KEPT],
             "events": events}
    check["ok"] = (check["non_2xx"] == 0 and check["socket_errors"] == 0
                   and (events is None or events["ok"]))
    if not check["ok"] or logged:
        log.warning("%s: check %s; nginx's error.log gained %d line(s) %s", label,
                    "ok" if check["ok"] else "FAILED", len(logged), logged[:1])
    progress(number, label, "conversation flow", flow)
    return {"round": number, "label": label, "backend": backend, "proxied": proxied,
            "flow": flow, "derived": derive(flow), "check": check}


def derive(window):
    """What a request costs in CPU, per part, from one window's wrk result and cores."""
    result, cores = window["results"][0], window["cpu_cores"]
    requests_per_s = result["requests"] / result["seconds"] if result["seconds"] else 0
    nginx = cores.get("nginx", 0.0)
    return {"requests_per_s": round(requests_per_s, 1), "api_cores": cores["api"],
            "nginx_cores": nginx, "others_cores": cores["others"],
            "machine_cores": cores["machine"], "api_us_per_2xx": us_per_2xx(window, ("api",)),
            "nginx_us_per_request": round(nginx / requests_per_s * 1e6, 1)
            if requests_per_s else None,
            "nginx_us_per_2xx": us_per_2xx(window, ("nginx",)),
            "all_us_per_2xx": us_per_2xx(window, OURS)}


def _diff(a, b):
    return None if a is None or b is None else round(a - b, 2)


def summarize(result):
    mine, flow, cost = {}, {}, {}  # mine: label -> its windows, in round order
    for w in result["windows"]:
        mine.setdefault(w["label"], []).append(w)
    for label, windows in mine.items():
        flow[label] = median_of([w["flow"]["results"][0] for w in windows])
        for key in ("non_2xx", "socket_errors", "nginx_error_log_lines"):
            flow[label][key] = sum(w["check"][key] for w in windows)
        derived = [w["derived"] for w in windows]
        cost[label] = {key: med([d[key] for d in derived], 2 if key.endswith("cores") else 1)
                       for key in derived[0]}
        cost[label]["rounds_nginx_us_per_request"] = [d["nginx_us_per_request"] for d in derived]
    all_us = {label: [w["derived"]["all_us_per_2xx"] for w in ws] for label, ws in mine.items()}
    proxy = {}
    for direct in BACKENDS:
        proxied = direct + PROXIED
        fa, fb, ca, cb = flow[direct], flow[proxied], cost[direct], cost[proxied]
        vs_direct, rounds = ratios(fb, fa)
        proxy[direct] = {
            "direct": direct, "proxied": proxied, "vs_direct": vs_direct,
            "vs_direct_rounds": rounds, "vs_direct_median_of_rounds": med(rounds, 3),
            "p50_added_ms": _diff(fb["p50_ms"], fa["p50_ms"]),
            "p99_added_ms": _diff(fb["p99_ms"], fa["p99_ms"]),
            "nginx_us_per_request": cb["nginx_us_per_request"], "nginx_cores": cb["nginx_cores"],
            **{f"{key}_{way}": k[key] for key in ("api_us_per_2xx", "all_us_per_2xx")
               for way, k in (("direct", ca), ("proxied", cb))},
            "added_us_per_2xx": _diff(cb["all_us_per_2xx"], ca["all_us_per_2xx"]),
            # Direct CPU per 2xx over proxied: the throughput ratio to expect at equal CPU.
            "cost_ratio": ratio(ca["all_us_per_2xx"], cb["all_us_per_2xx"]),
            "cost_ratio_rounds": [ratio(a, b) for a, b in zip(all_us[direct], all_us[proxied])]}
    # redis's ratio to null, both ways: the README's headline is the direct one.
    to_null = {way: dict(zip(("vs_null", "vs_null_rounds"),
                             ratios(flow["redis" + end], flow["null" + end])))
               for way, end in (("direct", ""), ("proxied", PROXIED))}
    return {"flow": flow, "cost": cost, "proxy": proxy, "redis_vs_null": to_null,
            "checks": [dict(w["check"], label=w["label"], round=w["round"])
                       for w in result["windows"]]}


def _added(value, unit):
    return "–" if value is None else f"{value:+.1f} {unit}"


def render(p, table):
    s = p["summary"]
    rows = []
    for label, row in s["flow"].items():
        k, proxied = s["cost"][label], label.endswith(PROXIED)
        backend = label.removesuffix(PROXIED)
        rows.append((f"{backend}, " + ("(b) nginx → gunicorn (unix socket)" if proxied
                                       else "(a) gunicorn direct (TCP)"),
                     n(row["ok_per_s"]), listed(row["rounds_ok_per_s"]),
                     x(s["proxy"][backend]["vs_direct"]) if proxied else "–",
                     n(row["p50_ms"], 1), n(row["p99_ms"], 1), n(row["p999_ms"], 1),
                     n(row["errors"]), n(row["generator_cores"], 2), n(k["api_cores"], 2),
                     n(k["nginx_cores"], 2) if proxied else "–", n(k["others_cores"], 2),
                     n(k["api_us_per_2xx"]),
                     f"**{n(k['nginx_us_per_request'])}**" if proxied else "–",
                     n(k["all_us_per_2xx"])))
    lines = [f"- **{b}**: (b)/(a) **{x(d['vs_direct'])}** (median of the per-round ratios "
             f"{x(d['vs_direct_median_of_rounds'])}; per round "
             f"{listed(d['vs_direct_rounds'], x)}); latency p50 {_added(d['p50_added_ms'], 'ms')}"
             f", p99 {_added(d['p99_added_ms'], 'ms')}. nginx used "
             f"**{n(d['nginx_us_per_request'])} µs of CPU per request** "
             f"({n(d['nginx_cores'], 2)} cores). CPU per 2xx, direct → proxied: API "
             f"{n(d['api_us_per_2xx_direct'])} → {n(d['api_us_per_2xx_proxied'])} µs, all "
             f"{n(d['all_us_per_2xx_direct'])} → {n(d['all_us_per_2xx_proxied'])} µs "
             f"({_added(d['added_us_per_2xx'], 'µs')}): cost ratio {x(d['cost_ratio'])} "
             f"(per round {listed(d['cost_ratio_rounds'], x)})." for b, d in s["proxy"].items()]
    lines.append("- redis / null: " + "; ".join(
        f"{'through nginx' if way == 'proxied' else 'direct'} {x(v['vs_null'])} (per round "
        f"{listed(v['vs_null_rounds'], x)})" for way, v in s["redis_vs_null"].items()) + ".")
    checks = s["checks"]
    bad = [c for c in checks if not c["ok"]]
    return ["## nginx in front of gunicorn vs gunicorn direct", "",
            f"{p['rounds']} round(s) of {p['duration_s']} s windows. The headline ratios to null "
            "(Targets, throughput) stay gunicorn-direct; this says what the proxy in front "
            "costs.", "",
            *table(("backend, way", "2xx/s (median)", "per round", "(b)/(a)", "p50 ms", "p99 ms",
                    "p99.9 ms", "errors", "wrk cores", "API cores", "nginx cores",
                    "other tenants", "API µs/2xx", "nginx µs/request", "all µs/2xx"), rows), "",
            *lines, "",
            (f"**Checks FAILED** for {len(bad)} of {len(checks)} windows." if bad else
             f"**Checks**: {len(checks)} windows: every answer 2xx, og.events complete after "
             "each redis window.")
            + f" nginx's error.log gained {sum(c['nginx_error_log_lines'] for c in checks)} "
            "line(s)."]
