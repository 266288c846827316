"""The drain: events/s one ingest worker writes into MariaDB from a backlog."""
import logging
import time
from datetime import datetime

from benchmarks import cpu, load, plots, preload
from benchmarks.report import get, n, verdict
from benchmarks.targets import BacklogSampler, count_events, reset_store
from core import config
from harness.stack import PYTHON

log = logging.getLogger("benchmarks")

DRAIN_BOUND_S = 600


def run(stack, plan):
    sweep = [_drain(stack, plan.drain_backlog, size) for size in plan.drain_batch_sizes]
    headline = _drain(stack, plan.drain_headline_backlog, config.DEFAULT_INGEST_BATCH_SIZE)
    return {"batch_sizes": sweep, "headline": headline}


def _log_time(line):
    return datetime.strptime(" ".join(line.split()[:2]), "%Y-%m-%d %H:%M:%S,%f").timestamp()


def drain_span(code, text, what="ingest run --burst"):
    """(log lines, seconds from its *starting* to its *stopped* line) of an ingest run."""
    if code != 0:
        raise RuntimeError(f"{what} exited {code}:\n{text[-2000:]}")
    lines = text.splitlines()
    start, stop = (_log_time(next(l for l in lines if mark in l))
                   for mark in (": starting on", ": stopped;"))
    return lines, stop - start


def _drain(stack, events, batch_size):
    reset_store(stack, "redis")
    with stack.redis().client() as client:
        began = time.monotonic()
        added = preload.into_streams(client, events, 1)
        fill_s = time.monotonic() - began
    env = stack.env("redis", OG_INGEST_BATCH_SIZE=batch_size)
    meter = cpu.CpuMeter({"mariadb": cpu.pid_of(stack.started_mariadb()),
                          "redis": cpu.pid_of(stack.started_redis())}).start()
    with BacklogSampler(stack.redis_url(), interval=0.1) as sampler:
        code, text, worker_cpu, wall = load.LoadProcess(
            [PYTHON, "-m", "ingest", "run", "--burst"], DRAIN_BOUND_S, env).wait()
    cores = meter.stop()
    _, seconds = drain_span(code, text)
    stored, left = count_events(stack), sampler.sample(0)
    r = {"batch_size": batch_size, "backlog": added, "fill_s": round(fill_s, 2),
         "fill_per_s": round(added / fill_s), "drain_s": round(seconds, 3),
         "events_per_s": round(added / seconds), "process_wall_s": round(wall, 2),
         "worker_cpu_us_per_event": round(worker_cpu / added * 1e6, 1),
         "worker_cores": round(worker_cpu / wall, 2), "mariadb_cores": cores["mariadb"],
         "redis_cores": cores["redis"], "machine_cores": cores["machine"],
         "stored": stored, "ok": stored == added and left["length"] == 0,
         "samples": sampler.samples}
    log.info("drain batch %5d: %8d events in %6.2f s = %7d events/s (worker %.1f µs CPU/event,"
             " %.2f cores; MariaDB %.2f cores) stored %s", batch_size, added, r["drain_s"],
             r["events_per_s"], r["worker_cpu_us_per_event"], r["worker_cores"],
             r["mariadb_cores"], "ok" if r["ok"] else f"MISMATCH {stored}")
    return r


def targets(result):
    return [verdict("drain of the headline backlog ≥ 50,000 events/s",
                    get(result, "headline", "events_per_s"), 50_000, unit=" events/s",
                    fmt="{:,.0f}")]


def render(result, table):
    rows = [(r["batch_size"], n(r["backlog"]), r["drain_s"], n(r["events_per_s"]),
             r["worker_cpu_us_per_event"], r["worker_cores"], r["mariadb_cores"],
             n(r["fill_per_s"]), "ok" if r["ok"] else "**mismatch**")
            for r in result["batch_sizes"] + [result["headline"]]]
    return ["## Drain: one worker process, backlog to MariaDB", "",
            "`python -m ingest run --burst` on a backlog XADDed straight into the stream, timed "
            "by its own log; the last row is the headline backlog at the default batch size.", "",
            *table(("batch size", "backlog", "seconds", "events/s", "worker CPU µs/event",
                    "worker cores", "MariaDB cores", "XADD fill/s", "og.events"), rows)]


def plot(result, out):
    figure, (axis,) = plots.panels(1)
    for r in result["batch_sizes"] + [result["headline"]]:
        axis.plot([p["t"] for p in r["samples"]], [p["length"] for p in r["samples"]],
                  label=f"batch {r['batch_size']}, {r['backlog']:,} events")
    axis.set(title="Drain of a backlog by one worker", xlabel="seconds", ylabel="stream length")
    axis.legend(fontsize=8)
    return plots.save(figure, out, "drain")
