"""What watching costs: the requests one open page makes, and write throughput beside 100
simulated open pages (method: benchmarks/README.md)."""
import logging
import re
import time

from benchmarks import load
from benchmarks.report import listed, n, x
from benchmarks.summary import med, median_of, ratio, statuses, us_per_2xx
from benchmarks.targets import Target, progress
from harness.servers import REPO_ROOT

log = logging.getLogger("benchmarks")

PAGE_JS = REPO_ROOT / "server" / "page" / "page.js"
# page.js's refresh: GET /dashboard/overview?lower=..&upper=.. (the window's range dashboard
# is in that answer).
REQUESTS_PER_REFRESH = 1
SETTLE_S = 1.0  # after the page's first refresh, before counting (its first fetches are done)
LABELS = ("flow", "flow+watchers")  # by whether simulated pages watch
ROLES = ("api", "redis", "mariadb", "ingest", "others")

# Every request the page made (Resource Timing), by kind, after `arguments[0]` ms.
_REQUESTS = """const out = {};
for (const entry of performance.getEntriesByType("resource")) {
  if (entry.startTime < arguments[0]) continue;
  const url = new URL(entry.name), path = url.pathname;
  const kind = path.startsWith("/dashboard/range/") ? "range"
    : path + (url.searchParams.has("lower") ? "?lower&upper" : "");
  out[kind] = (out[kind] || 0) + 1;
}
return out;"""


def run(stack, plan):
    found = re.search(r"^const REFRESH_MS = (\d+);", PAGE_JS.read_text(), re.MULTILINE)
    if not found:
        raise RuntimeError(f"REFRESH_MS not found in {PAGE_JS}")
    interval_ms = int(found.group(1))
    planned = REQUESTS_PER_REFRESH * 1000 / interval_ms
    one = _one_page(stack, plan.page_open_s)
    log.info("one open page: %.3f requests/s over %d s (page.js plans %.3f); at load %s",
             one["requests_per_s"], one["seconds"], planned, one["at_load"])
    windows = []
    for number in range(1, plan.rounds + 1):
        first = number % 2 == 1  # alone first in odd rounds
        windows += [_window(stack, plan, number, watched, interval_ms)
                    for watched in (not first, first)]
    result = {"refresh_ms": interval_ms, "requests_per_refresh": REQUESTS_PER_REFRESH,
              "planned_requests_per_s": round(planned, 3), "one_page": one,
              "watchers": plan.page_watchers, "rounds": plan.rounds,
              "duration_s": plan.duration, "windows": windows}
    return {**result, "summary": summarize(result)}


def _one_page(stack, seconds):
    """Headless Chromium keeps the page open: the requests it made, by kind."""
    from harness.browser import start_chromium  # selenium: only when this runs
    from selenium.webdriver.support.wait import WebDriverWait

    with Target(stack, "redis", worker=True, label="page") as target:
        driver = start_chromium()
        try:
            driver.get(target.url + "/")
            WebDriverWait(driver, 30, 0.1).until(lambda d: d.execute_script(
                "return document.getElementById('status').dataset.state") == "fresh",
                "the page did not show fresh numbers within 30 s")
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


def _window(stack, plan, number, watched, interval_ms):
    """The conversation flow, with simulated open pages (wrk watchers.lua) or alone."""
    label, today = LABELS[watched], time.strftime("%Y-%m-%d", time.gmtime())
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
    progress(number, label, "flow" + (", watchers" if watched else ""), window)
    return {"round": number, "label": label, "watched": watched, "window": window}


def summarize(result):
    mine = {label: [w["window"] for w in result["windows"] if w["label"] == label]
            for label in LABELS}
    alone, watched = mine.values()
    watchers = [w["results"][1] for w in watched]
    # CPU per write: steadier than 2xx/s when other tenants take a varying share of the
    # two cores. With watchers it includes what their requests cost, which is the point.
    cost = {label: med([us_per_2xx(w) for w in windows]) for label, windows in mine.items()}
    flows = {label: median_of([w["results"][0] for w in windows])
             for label, windows in mine.items()}
    rounds = [ratio(b["results"][0]["ok_per_s"], a["results"][0]["ok_per_s"])
              for a, b in zip(alone, watched)]
    return {
        "us_per_2xx": cost, "cost_ratio": ratio(*cost.values()),
        "cost_ratio_rounds": [ratio(us_per_2xx(a), us_per_2xx(b)) for a, b in zip(alone, watched)],
        "flow": flows,
        "with_vs_without": ratio(flows["flow+watchers"]["ok_per_s"], flows["flow"]["ok_per_s"]),
        "with_vs_without_rounds": rounds, "with_vs_without_median_of_rounds": med(rounds, 3),
        "watcher_requests_per_s": med([r["requests"] / r["seconds"] for r in watchers], 1),
        "watcher_p99_ms": med([r["p99_ms"] for r in watchers], 2),
        "watcher_errors": sum(r["errors"] for r in watchers),
        "watcher_statuses": {str(k): v for k, v in statuses(watchers).items()},
        "cpu_cores": {label: {role: med([w["cpu_cores"][role] for w in windows], 2)
                              for role in ROLES} for label, windows in mine.items()},
        "checks_ok": all(w["check"]["ok"] for w in alone + watched if w["check"]),
    }


def render(p, table):
    s, one = p["summary"], p["one_page"]
    rows = [[label, n(row["ok_per_s"]), listed(row["rounds_ok_per_s"]), n(row["p50_ms"], 1),
             n(row["p99_ms"], 1), n(row["errors"]),
             *[n(s["cpu_cores"][label][role], 2) for role in ROLES]]
            for label, row in s["flow"].items()]
    kinds = ", ".join(f"{k} {c}" for k, c in sorted(one["by_kind"].items()))
    return ["## The page: what watching costs", "",
            f"**One open page** (headless Chromium on `/`, redis backend, worker running): "
            f"{one['requests']} requests in {one['seconds']} s = **{one['requests_per_s']:.3f} "
            f"requests/s** ({kinds}); page.js plans {p['planned_requests_per_s']:.3f}/s (one "
            f"request every {p['refresh_ms'] / 1000:g} s). Loading it: "
            + ", ".join(f"{k} {c}" for k, c in sorted(one["at_load"].items()))
            + ", plus the document.", "",
            f"**{p['watchers']} open pages** (wrk `watchers.lua`) beside the conversation flow, "
            f"{p['rounds']} round(s) of {p['duration_s']} s: write throughput with / without = "
            f"**{x(s['with_vs_without'])}** (per round: {listed(s['with_vs_without_rounds'], x)})"
            f"; watchers {n(s['watcher_requests_per_s'], 1)} requests/s, p99 "
            f"{n(s['watcher_p99_ms'], 1)} ms, statuses {s['watcher_statuses']}, errors "
            f"{s['watcher_errors']}. CPU per write {n(s['us_per_2xx']['flow'])} µs without, "
            f"{n(s['us_per_2xx']['flow+watchers'])} µs with: cost ratio "
            f"**{x(s['cost_ratio'])}** (per round: {listed(s['cost_ratio_rounds'], x)}).", "",
            *table(("window", "2xx/s (median)", "per round", "p50 ms", "p99 ms", "errors",
                    "API cores", "Redis", "MariaDB", "worker", "other tenants"), rows), "",
            "og.events checks after every window: "
            + ("all passed" if s["checks_ok"] else "**FAILED**") + "."]
