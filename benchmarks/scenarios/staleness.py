"""/dashboard/range staleness: from a 200 on /initial (symbol z) until /dashboard/range counts
it, idle and under load."""
import http.client
import json
import logging
import time
import uuid as uuidlib
from statistics import median

from benchmarks import load
from benchmarks.report import n
from benchmarks.targets import Target

log = logging.getLogger("benchmarks")

PAD_S = 0.2
POLL_S = 0.01
GAP_S = 2 * PAD_S + 0.05  # between probes, so that no two fall into one probe's range
GIVE_UP_S = 15.0
LOAD_ALPHABET = "abcdefghijklmnopqrstuvwxy"  # the load's symbols: all but the probes' z


def _bound(epoch):
    return (time.strftime("%Y-%m-%d%%20%H:%M:%S", time.gmtime(epoch))
            + f".{int(epoch % 1 * 1e6):06d}")


def _probe(connection):
    body = json.dumps({"uuid": str(uuidlib.uuid4()), "symbol": "z"})
    sent = time.time()
    connection.request("POST", "/initial", body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    response.read()
    answered = time.time()
    if response.status != 200:
        return {"status": response.status}
    path = f"/dashboard/range/{_bound(sent - PAD_S)}/{_bound(answered + PAD_S)}"
    polls = 0
    while time.time() - answered < GIVE_UP_S:
        connection.request("GET", path)
        reply = connection.getresponse()
        body = reply.read()
        polls += 1
        if reply.status == 200 and any(row["symbol"] == "z" and row["count"] >= 1
                                       for row in json.loads(body)):
            return {"status": 200, "staleness_ms": round((time.time() - answered) * 1000, 1),
                    "polls": polls}
        time.sleep(POLL_S)
    return {"status": 200, "staleness_ms": None, "polls": polls}


def _probes(url, count, what, warmup=0.0):
    """`count` probes, one after another; their summary."""
    time.sleep(warmup)
    host, port = url.split("//")[1].split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        probes = []
        for _ in range(count):
            probes.append(_probe(connection))
            time.sleep(GAP_S)
    finally:
        connection.close()
    seen = sorted(p["staleness_ms"] for p in probes if p.get("staleness_ms") is not None)
    summary = {"probes": len(probes), "seen": len(seen), "p50_ms": median(seen) if seen else None,
               "p90_ms": seen[int(0.9 * (len(seen) - 1))] if seen else None,
               "max_ms": seen[-1] if seen else None, "all": probes}
    log.info("staleness %s: p50 %s ms, p90 %s ms, max %s ms (%d/%d seen)", what,
             summary["p50_ms"], summary["p90_ms"], summary["max_ms"], len(seen), len(probes))
    return summary


def run(stack, plan):
    with Target(stack, "redis", worker=True) as target:
        idle = _probes(target.url, plan.staleness_probes, "idle")
        seconds = int(plan.staleness_probes * (GAP_S + 0.5)) + 5
        window = target.measure(
            lambda: load.start_wrk(target.url, "conversation", seconds, (0.5, LOAD_ALPHABET)),
            during=lambda: _probes(target.url, plan.staleness_probes, "under load", warmup=1.0))
        target.settle()
        check = target.check()
    return {"idle": idle, "loaded": window.pop("during"), "load": window, "check": check}


def render(s, table):
    load = s["load"]["results"][0]
    return ["## /dashboard/range staleness", "",
            "From the 200 of a probe's /initial until /dashboard/range (polled every 10 ms) counts "
            "it; worker running.", "",
            *table(("", "seen", "p50 ms", "p90 ms", "max ms"),
                   [(name, f"{part['seen']}/{part['probes']}", part["p50_ms"], part["p90_ms"],
                     part["max_ms"]) for name, part in (("idle", s["idle"]), (
                        f"under load ({n(load['ok_per_s'])} 2xx/s)", s["loaded"]))])]
