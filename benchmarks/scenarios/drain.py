"""The drain: events/s one ingest worker writes into MariaDB from a backlog."""
import contextlib
import logging
import re
import time
from datetime import datetime

from benchmarks import cpu, load, plots, preload
from benchmarks.report import get, n, verdict
from benchmarks.targets import (BacklogSampler, count_events, database_name, reset_store,
                                stream_length)
from core import config
from harness.stack import CLUSTER, PYTHON

log = logging.getLogger("benchmarks")

BOUND_S = 600
BATCH_LINE = re.compile(r": acknowledged (\d+) entries")  # ingest/worker.py, at debug level


def run(stack, plan):
    runs = [(plan.drain_backlog, size) for size in plan.drain_batch_sizes]
    runs.append((plan.drain_headline_backlog, config.DEFAULT_INGEST_BATCH_SIZE))
    drains = [{"batch_size": size, **drain(stack, events, f"batch {size}", sample=True,
                                           OG_INGEST_BATCH_SIZE=size)} for events, size in runs]
    return {"batch_sizes": drains[:-1], "headline": drains[-1]}


def _log_time(line):
    return datetime.strptime(" ".join(line.split()[:2]), "%Y-%m-%d %H:%M:%S,%f").timestamp()


def drain(stack, events, what, store="main", partitions=1, seed=None, sample=False, **settings):
    """`events` XADDed into an emptied store's `partitions` streams, then drained by `python -m
    ingest run --burst`, timed by its log; `settings` for the worker (OG_LOG_LEVEL=debug: the
    batch sizes too); `sample`: the stream length every 0.1 s."""
    reset_store(stack, "redis", store)
    client = stack.redis_client(store)
    try:
        began = time.monotonic()
        added = preload.into_streams(client, events, partitions, seed=seed)
        fill_s = time.monotonic() - began
        env = stack.env("redis", redis=store, database=database_name(store),
                        OG_STREAM_PARTITIONS=partitions, **settings)
        redis = (cpu.pids_of(stack.redis_cluster().nodes) if store == CLUSTER
                 else cpu.pid_of(stack.started_redis(store)))
        meter = cpu.CpuMeter({"mariadb": cpu.pid_of(stack.started_mariadb()),
                              "redis": redis}).start()
        sampler = (BacklogSampler(stack.redis_url(store), partitions, interval=0.1) if sample
                   else contextlib.nullcontext())
        with sampler:
            code, text, worker_cpu, wall = load.LoadProcess(
                [PYTHON, "-m", "ingest", "run", "--burst"], BOUND_S, env).wait()
        cores = meter.stop()
        if code != 0:
            raise RuntimeError(f"{what}: ingest run --burst exited {code}:\n{text[-2000:]}")
        lines = text.splitlines()
        start, stop = (_log_time(next(line for line in lines if mark in line))
                       for mark in (": starting on", ": stopped;"))
        stored, left = count_events(stack, store), stream_length(client, partitions)
    finally:
        client.close()
    batches = [int(m.group(1)) for m in map(BATCH_LINE.search, lines) if m]
    r = {"backlog": added, "fill_s": round(fill_s, 2), "fill_per_s": round(added / fill_s),
         "drain_s": round(stop - start, 3), "events_per_s": round(added / (stop - start)),
         "process_wall_s": round(wall, 2),
         "worker_cpu_us_per_event": round(worker_cpu / added * 1e6, 1),
         "worker_cores": round(worker_cpu / wall, 2), "mariadb_cores": cores["mariadb"],
         "redis_cores": cores["redis"], "machine_cores": cores["machine"],
         **({"batches": len(batches), "mean_batch": round(sum(batches) / len(batches)),
             "max_batch": max(batches)} if batches else {}),
         "stored": stored, "stream_length_after": left, "ok": stored == added and left == 0,
         **({"samples": sampler.samples} if sample else {})}
    log.info("drain %s: %d events over %d stream(s) in %.2f s = %d events/s (worker %.1f µs "
             "CPU/event, %.2f cores; MariaDB %.2f cores) stored %s", what, added, partitions,
             r["drain_s"], r["events_per_s"], r["worker_cpu_us_per_event"], r["worker_cores"],
             r["mariadb_cores"], "ok" if r["ok"] else f"MISMATCH {stored} (left {left})")
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
