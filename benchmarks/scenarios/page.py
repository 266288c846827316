"""What watching costs: the requests one open page makes, and write throughput beside 100
simulated open pages (method: benchmarks/README.md)."""
import logging
import re
import time
from statistics import median

from benchmarks import load
from benchmarks.report import listed, n, x
from benchmarks.summary import med, median_of, ratio, statuses, us_per_2xx
from benchmarks.targets import Target
from harness.servers import REPO_ROOT

log = logging.getLogger("benchmarks")

PAGE_JS = REPO_ROOT / "server" / "page" / "page.js"
REQUESTS_PER_REFRESH = 1
"""page.js's refresh: GET /dashboard/overview?lower=..&upper=.. (the window's range
dashboard is in that answer)."""
SETTLE_S = 1.0
"""After the page's first refresh, before counting (its files and first fetches are done)."""

# Every request the page made (Resource Timing), by kind, after `arguments[0]` ms.
_REQUESTS = """
const since = arguments[0], out = {};
for (const entry of performance.getEntriesByType("resource")) {
  if (entry.startTime < since) continue;
  const url = new URL(entry.name), path = url.pathname;
  const kind = path.startsWith("/dashboard/range/") ? "range"
    : path + (url.searchParams.has("lower") ? "?lower&upper" : "");
  out[kind] = (out[kind] || 0) + 1;
}
return out;
"""


def refresh_ms():
    """REFRESH_MS as page.js says it."""
    match = re.search(r"^const REFRESH_MS = (\d+);", PAGE_JS.read_text(), re.MULTILINE)
    if not match:
        raise RuntimeError(f"REFRESH_MS not found in {PAGE_JS}")
    return int(match.group(1))


def run(stack, plan):
    interval_ms = refresh_ms()
    planned = REQUESTS_PER_REFRESH * 1000 / interval_ms
    one = _one_page(stack, plan.page_open_s)
    log.info("one open page: %.3f requests/s over %d s (page.js plans %.3f); at load %s",
             one["requests_per_s"], one["seconds"], planned, one["at_load"])
    windows = []
    for number in range(1, plan.rounds + 1):
        first = number % 2 == 1  # alone first in odd rounds
        for watched in (not first, first):
            windows.append(_window(stack, plan, number, watched, interval_ms))
    return {"refresh_ms": interval_ms, "requests_per_refresh": REQUESTS_PER_REFRESH,
            "planned_requests_per_s": round(planned, 3),
            "one_page": one, "watchers": plan.page_watchers, "rounds": plan.rounds,
            "duration_s": plan.duration, "windows": windows,
            "summary": summarize({"windows": windows})}


# --- (a) one real page ------------------------------------------------------------------

def _one_page(stack, seconds):
    from harness.browser import start_chromium  # selenium: only when this runs

    with Target(stack, "redis", worker=True, label="page") as target:
        driver = start_chromium()
        try:
            driver.get(target.url + "/")
            deadline = time.monotonic() + 30
            while driver.execute_script(
                    "return document.getElementById('status').dataset.state") != "fresh":
                if time.monotonic() > deadline:
                    raise RuntimeError("the page did not show fresh numbers within 30 s")
                time.sleep(0.1)
            time.sleep(SETTLE_S)
            at_load = driver.execute_script(_REQUESTS, 0)
            since = driver.execute_script("return performance.now()")
            time.sleep(seconds)
            counted = driver.execute_script(_REQUESTS, since)
            elapsed = (driver.execute_script("return performance.now()") - since) / 1000
        finally:
            driver.quit()
    total = sum(counted.values())
    return {"seconds": round(elapsed, 1), "requests": total, "by_kind": counted,
            "requests_per_s": round(total / elapsed, 3), "at_load": at_load}


# --- (b) write throughput with and without simulated pages ---------------------------------

def _label(watched):
    return "flow+watchers" if watched else "flow"


def _window(stack, plan, number, watched, interval_ms):
    label = _label(watched)
    today = time.strftime("%Y-%m-%d", time.gmtime())
    with Target(stack, "redis", worker=True, label=label) as target:
        url = target.url
        target.measure(lambda: load.start_wrk(url, "conversation", plan.warmup))
        target.settle()
        starters = [lambda: load.start_wrk(url, "conversation", plan.duration)]
        if watched:
            starters.append(lambda: load.start_wrk(url, "watchers", plan.duration,
                                                   (today, today, interval_ms),
                                                   connections=plan.page_watchers))
        window = target.measure(*starters)
        window["settle_s"] = target.settle()
        window["check"] = target.check()
    flow = window["results"][0]
    watchers = window["results"][1] if watched else None
    cores = window["cpu_cores"]
    log.info("round %d %-14s %8.0f ok/s  p99 %s ms  errors %d%s  (API %.2f cores, MariaDB %.2f, "
             "others %.2f)", number, label, flow["ok_per_s"], flow["p99_ms"], flow["errors"],
             f"; watchers {watchers['requests'] / watchers['seconds']:.1f} req/s, "
             f"p99 {watchers['p99_ms']} ms, errors {watchers['errors']}" if watchers else "",
             cores["api"], cores["mariadb"], cores["others"])
    return {"round": number, "label": label, "watched": watched, "window": window}


def summarize(result):
    windows = result["windows"]
    flows = {}
    for label in (_label(False), _label(True)):
        mine = [w["window"]["results"][0] for w in windows if w["label"] == label]
        if mine:
            flows[label] = median_of(mine)
    by_round = {}
    for w in windows:
        by_round.setdefault(w["round"], {})[w["label"]] = w["window"]
    rounds = [ratio(pair[_label(True)]["results"][0]["ok_per_s"],
                    pair[_label(False)]["results"][0]["ok_per_s"])
              for _, pair in sorted(by_round.items()) if len(pair) == 2]
    watchers = [w["window"]["results"][1] for w in windows if w["watched"]]
    cores = {label: {role: round(median(w["window"]["cpu_cores"][role] for w in windows
                                        if w["label"] == label), 2)
                     for role in ("api", "redis", "mariadb", "ingest", "others")}
             for label in flows}
    known = [r for r in rounds if r is not None]
    # CPU per write: steadier than 2xx/s when other tenants take a varying share of the
    # two cores. With watchers it includes what their requests cost, which is the point.
    cost = {label: med([us_per_2xx(w["window"]) for w in windows if w["label"] == label])
            for label in flows}
    cost_rounds = [ratio(us_per_2xx(pair[_label(False)]), us_per_2xx(pair[_label(True)]))
                   for _, pair in sorted(by_round.items()) if len(pair) == 2]
    return {
        "us_per_2xx": cost,
        "cost_ratio": ratio(cost.get(_label(False)), cost.get(_label(True))),
        "cost_ratio_rounds": cost_rounds,
        "flow": flows,
        "with_vs_without": ratio(flows[_label(True)]["ok_per_s"], flows[_label(False)]["ok_per_s"])
        if len(flows) == 2 else None,
        "with_vs_without_rounds": rounds,
        "with_vs_without_median_of_rounds": round(median(known), 3) if known else None,
        "watcher_requests_per_s": round(median(r["requests"] / r["seconds"] for r in watchers), 1)
        if watchers else None,
        "watcher_p99_ms": round(median(r["p99_ms"] for r in watchers if r["p99_ms"] is not None), 2)
        if watchers else None,
        "watcher_errors": sum(r["errors"] for r in watchers),
        "watcher_statuses": {str(k): v for k, v in statuses(watchers).items()},
        "cpu_cores": cores,
        "checks_ok": all(w["window"]["check"]["ok"] for w in windows if w["window"]["check"]),
    }


def render(p, table):
    s, one = p["summary"], p["one_page"]
    rows = [[label, n(row["ok_per_s"]), listed(row["rounds_ok_per_s"]), n(row["p50_ms"], 1), n(row["p99_ms"], 1),
             n(row["errors"]), *[n(s["cpu_cores"][label][r], 2) for r in ("api", "redis", "mariadb", "ingest", "others")]]
            for label, row in s["flow"].items()]
    kinds = ", ".join(f"{k} {c}" for k, c in sorted(one["by_kind"].items()))
    return ["## The page: what watching costs", "",
            f"**One open page** (headless Chromium on `/`, redis backend, worker running): {one['requests']} requests "
            f"in {one['seconds']} s = **{one['requests_per_s']:.3f} requests/s** ({kinds}); page.js plans "
            f"{p['planned_requests_per_s']:.3f}/s (one request every {p['refresh_ms'] / 1000:g} s). Loading it: "
            + ", ".join(f"{k} {c}" for k, c in sorted(one["at_load"].items())) + ", plus the document.", "",
            f"**{p['watchers']} open pages** (wrk `watchers.lua`) beside the conversation flow, {p['rounds']} round(s) "
            f"of {p['duration_s']} s: write throughput with / without = **{x(s['with_vs_without'])}** (per round: "
            f"{listed(s['with_vs_without_rounds'], x)}); watchers {n(s['watcher_requests_per_s'], 1)} requests/s, p99 "
            f"{n(s['watcher_p99_ms'], 1)} ms, statuses {s['watcher_statuses']}, errors {s['watcher_errors']}. CPU per "
            f"write {n(s['us_per_2xx'].get('flow'))} µs without, {n(s['us_per_2xx'].get('flow+watchers'))} µs with: "
            f"cost ratio **{x(s['cost_ratio'])}** (per round: {listed(s['cost_ratio_rounds'], x)}).", "",
            *table(("window", "2xx/s (median)", "per round", "p50 ms", "p99 ms", "errors", "API cores", "Redis",
                    "MariaDB", "worker", "other tenants"), rows), "",
            "og.events checks after every window: " + ("all passed" if s["checks_ok"] else "**FAILED**") + "."]
