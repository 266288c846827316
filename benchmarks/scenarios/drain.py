"""The drain: events/s that ONE ingest worker process writes into MariaDB from a backlog.

The stream is filled directly (XADD, fields as core/store/lua/initial.lua and followup.lua
write them), then `python -m ingest run --burst` drains it and exits. The rate is
measured by the worker's own clock: from its "starting" log line to its "stopped" line.
"""
import logging
import time
from datetime import datetime

from benchmarks import cpu, load, preload
from benchmarks.backlog import BacklogSampler
from harness.stack import PYTHON
from benchmarks.targets import count_events, reset_store
from core import config

log = logging.getLogger("benchmarks")

DRAIN_BOUND_S = 600


def run(stack, plan):
    sweep = [_drain(stack, plan.drain_backlog, size) for size in plan.drain_batch_sizes]
    headline = _drain(stack, plan.drain_headline_backlog, config.DEFAULT_INGEST_BATCH_SIZE)
    return {"batch_sizes": sweep, "headline": headline}


def _log_time(line):
    return datetime.strptime(" ".join(line.split()[:2]), "%Y-%m-%d %H:%M:%S,%f").timestamp()


def drain_span(code, text, what="ingest run --burst"):
    """(log lines, seconds from the worker's *starting* to its *stopped* line) of a
    finished `python -m ingest run --burst`; a failed run raises with its log's tail."""
    if code != 0:
        raise RuntimeError(f"{what} exited {code}:\n{text[-2000:]}")
    lines = text.splitlines()
    start = _log_time(next(l for l in lines if ": starting on" in l))
    stop = _log_time(next(l for l in lines if ": stopped;" in l))
    return lines, stop - start


def _drain(stack, events, batch_size):
    reset_store(stack, "redis")
    client = stack.redis().client()
    try:
        began = time.monotonic()
        added = preload.into_stream(client, events)
        fill_s = time.monotonic() - began
        env = stack.env("redis", OG_INGEST_BATCH_SIZE=batch_size)
        meter = cpu.CpuMeter({"mariadb": cpu.pid_of(stack.started_mariadb()),
                              "redis": cpu.pid_of(stack.started_redis())}).start()
        with BacklogSampler(stack.redis_url(), interval=0.1) as sampler:
            worker = load.LoadProcess([PYTHON, "-m", "ingest", "run", "--burst"], DRAIN_BOUND_S, env)
            code, text, worker_cpu, wall = worker.wait()
        cores = meter.stop()
        _, seconds = drain_span(code, text)
        stored = count_events(stack)
        left = sampler.sample(0)
    finally:
        client.close()
    result = {
        "batch_size": batch_size, "backlog": added, "fill_s": round(fill_s, 2),
        "fill_per_s": round(added / fill_s), "drain_s": round(seconds, 3),
        "events_per_s": round(added / seconds), "process_wall_s": round(wall, 2),
        "worker_cpu_us_per_event": round(worker_cpu / added * 1e6, 1),
        "worker_cores": round(worker_cpu / wall, 2), "mariadb_cores": cores["mariadb"],
        "redis_cores": cores["redis"], "machine_cores": cores["machine"],
        "stored": stored, "ok": stored == added and left["length"] == 0,
        "samples": sampler.samples,
    }
    log.info("drain batch %5d: %8d events in %6.2f s = %7d events/s (worker %.1f µs CPU/event,"
             " %.2f cores; MariaDB %.2f cores) stored %s", batch_size, added, result["drain_s"],
             result["events_per_s"], result["worker_cpu_us_per_event"], result["worker_cores"],
             result["mariadb_cores"], "ok" if result["ok"] else f"MISMATCH {stored}")
    return result
