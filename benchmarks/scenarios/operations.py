"""What three choices of issue 11 cost: the uuid filter on the write path, `ingest rebuild`
under load, the index events_by_uuid_key on the drain (method: benchmarks/README.md)."""
import json
import logging
import os
import signal
import time
from contextlib import closing

from benchmarks import cpu, load, preload, range_store
from benchmarks.report import listed, n, x
from benchmarks.summary import med, median_of, ratio, us_per_2xx
from benchmarks.targets import Sampler, Target, count_events, reset_store, sql, wait_for
from core import keys
from harness.stack import PYTHON

log = logging.getLogger("benchmarks")
BOUND_S = 600  # on one rebuild (and so on the wrk around it), and on waiting for a drain
INDEX = "events_by_uuid_key"
SAMPLE_S = 0.1
FILTER = {True: "filter on", False: "filter off"}
INDEXED = {True: "with index", False: "without index"}


def run(stack, plan):
    arms = [(number, arm) for number in range(1, plan.rounds + 1)  # True first in odd rounds
            for arm in ((True, False) if number % 2 else (False, True))]
    result = {"rounds": plan.rounds, "duration_s": plan.duration,
              "filter": [_filter_window(stack, plan, *arm) for arm in arms],
              "rebuilds": [_rebuild_store(stack, plan, events)
                           for events in plan.ops_rebuild_events],
              "drains": [_drain(stack, plan, *arm) for arm in arms]}
    return {**result, "summary": summarize(result)}


def _accepted(result):
    return result["counters"].get("initial_ok", 0) + result["counters"].get("followup_ok", 0)


def _filter_window(stack, plan, number, on):
    with Target(stack, "redis", settings={} if on else {"OG_UUID_FILTER_MB": 0},
                label=FILTER[on]) as target:
        target.measure(lambda: load.start_wrk(target.url, "conversation", plan.warmup))
        target.settle()
        before = target.redis.info()
        window = target.measure(lambda: load.start_wrk(target.url, "conversation", plan.duration))
        after = target.redis.info()
        window["settle_s"] = target.settle()
        window["check"] = target.check()
        bits = target.redis.get(keys.seen_bits(0))
        seen_bytes = target.redis.strlen(keys.seen(0))
    result, redis_cores = window["results"][0], window["cpu_cores"]["redis"]
    calls_per_s = sum(result["statuses"].get(s, 0) for s in (200, 404, 409)) / result["seconds"]
    aof, aof_before = after.get("aof_current_size"), before.get("aof_current_size")
    window["redis"] = {
        "seen_bits": None if bits is None else int(bits), "seen_bytes": seen_bytes,
        "script_calls_per_s": round(calls_per_s, 1),
        "redis_us_per_call": round(redis_cores / calls_per_s * 1e6, 1) if calls_per_s else None,
        "used_memory_after": after["used_memory"],
        "used_memory_added": after["used_memory"] - before["used_memory"],
        "aof_bytes_added": None if aof is None else aof - aof_before,
        # Redis 7.0 has no rewrite counter: a rewrite shows as a new base or a smaller file.
        "aof_rewrote": (after.get("aof_rewrites") != before.get("aof_rewrites")
                        or after.get("aof_base_size") != before.get("aof_base_size")
                        or (aof or 0) < (aof_before or 0)),
        "writes_seen_by_wrk": _accepted(result)}
    log.info("round %d %s: %.0f ok/s, Redis %s µs/call", number, FILTER[on],
             result["ok_per_s"], window["redis"]["redis_us_per_call"])
    return {"round": number, "label": FILTER[on], "on": on, "window": window}


class RedisTimeline(Sampler):
    """(seconds, entries ever appended to partition 0's stream, the rebuild's fence up, the
    undrained counter) every SAMPLE_S, in one pipelined round trip."""

    interval = SAMPLE_S

    def __init__(self, client):
        super().__init__()
        self.redis = client

    def sample(self, at):
        pipe = self.redis.pipeline(transaction=False)
        pipe.xinfo_stream(keys.stream(0)).exists(keys.fence(0)).get(keys.undrained(0))
        try:
            info, fenced, undrained = pipe.execute()
        except Exception:  # noqa: BLE001 - a missed sample, not a failed run
            return None
        return (round(at, 3), info["entries-added"], bool(fenced), int(undrained or 0))

    def rate(self, start, end):
        """Accepted writes/s between two times (the samples nearest inside)."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2 or inside[-1][0] == inside[0][0]:
            return None
        return round((inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0]), 1)


def _rebuild_store(stack, plan, events):
    reset_store(stack, "redis")
    with closing(stack.mariadb().connect(database="og")) as connection:
        history = range_store.generate(connection, events, range_store.window_end())
    with Target(stack, "redis", worker=True, reset=False, label=f"rebuild@{events}") as target:
        target.measure(lambda: load.start_wrk(target.url, "conversation", plan.warmup))
        target.settle()
        windows = [_rebuild_window(plan, target, number)
                   for number in range(1, plan.ops_rebuild_rounds + 1)]
        check = target.check()
    kept = ("events", "conversations", "followups", "seconds", "from", "to")
    return {"events": events, "history": {k: history[k] for k in kept}, "windows": windows,
            "check": check, "events_after": count_events(stack)}


def _rebuild_window(plan, target, number):
    rows_before = count_events(target.stack)
    meter = cpu.CpuMeter(target.cpu_roles()).start()
    with RedisTimeline(target.redis) as timeline:
        flow = load.start_wrk(target.url, "conversation",
                              plan.ops_rebuild_before_s + BOUND_S + plan.ops_rebuild_after_s)
        try:
            time.sleep(plan.ops_rebuild_before_s)
            began = timeline.now()
            code, text, rebuild_cpu, wall = load.LoadProcess(
                [PYTHON, "-m", "ingest", "rebuild"], BOUND_S, target.env).wait()
            ended = timeline.now()
            time.sleep(plan.ops_rebuild_after_s)
            flow.process.send_signal(signal.SIGINT)  # wrk stops and reports, as at its -d
            result = load.wrk_result(flow)
        finally:
            flow.kill()
        stopped = timeline.now()
    cores = meter.stop()
    target.accepted += _accepted(result)
    if code != 0:
        raise RuntimeError(f"ingest rebuild exited {code}:\n{text[-3000:]}")
    summary = json.loads(next(line for line in text.splitlines() if line.startswith("{")))
    settle_s = target.settle()
    samples = timeline.samples
    fenced = [s[0] for s in samples if s[2]]
    before, during = timeline.rate(1.0, began), timeline.rate(began, ended)
    after = timeline.rate(ended + 1.0, stopped)
    log.info("rebuild round %d on %d rows: %.2f s, %s; accepted writes/s before %s, during %s,"
             " after %s", number, rows_before, wall, summary["phases"], before, during, after)
    return {
        "round": number, "events_in_store": rows_before,
        "command_wall_s": round(wall, 3), "command_cpu_s": round(rebuild_cpu, 2),
        "phases": summary["phases"], "summary": summary, "fenced_s": summary.get("fenced_s"),
        "range_bucket_days": summary.get("range_bucket_days"),
        "fence_seen_s": round(fenced[-1] - fenced[0] + SAMPLE_S, 2) if fenced else None,
        "writes_per_s_before": before, "writes_per_s_during": during,
        "writes_per_s_after": after, "after_vs_before": ratio(after, before),
        "status_503": result["statuses"].get(503, 0), "statuses": result["statuses"],
        "socket_errors": result["socket_errors"],
        "wrk": {k: result[k] for k in ("seconds", "requests", "ok", "ok_per_s", "errors",
                                       "p50_ms", "p99_ms", "p999_ms", "max_ms",
                                       "generator_cores")},
        "rebuild_started_s": round(began, 2), "rebuild_ended_s": round(ended, 2),
        "window_s": round(stopped, 2), "max_undrained": max((s[3] for s in samples), default=0),
        "settle_s": settle_s, "cpu_cores": cores, "timeline": samples}


def _drain(stack, plan, number, indexed):
    """A running worker whose start-up migration is done (its consumer group is made after
    it), the index dropped from outside for the 'without' arm, the worker paused while the
    backlog is XADDed, then resumed and timed until it is drained."""
    label, mariadb = INDEXED[indexed], stack.mariadb()
    has_index = lambda: INDEX in {row[2] for row in sql(mariadb, "og", "SHOW INDEX FROM events")[1]}
    client = stack.redis().client()
    client.delete(keys.stream(0))  # drained and empty: its group is made again at start-up
    rows_before = count_events(stack)
    with closing(client), stack.ingest_worker(stack.env("redis"),
                                              f"ops-{number}-{label.replace(' ', '-')}") as worker:
        wait_for(lambda: client.exists(keys.stream(0)) and client.xinfo_groups(
            keys.stream(0)), "the worker's start-up")
        if not indexed:
            drop_s = sql(mariadb, "og", f"ALTER TABLE events DROP INDEX {INDEX}")[0]
        if has_index() != indexed:
            raise RuntimeError(f"{label}: the index is {'missing' if indexed else 'there'}")
        pid = worker.process.pid
        os.kill(pid, signal.SIGSTOP)
        try:  # the same size and shape each drain, other uuids (seeded by round and arm)
            added = preload.into_streams(client, plan.ops_drain_backlog, 1,
                                         seed=2 * number + indexed)
        finally:
            os.kill(pid, signal.SIGCONT)
        worker_cpu = cpu.cpu_seconds(pid)
        meter = cpu.CpuMeter({"mariadb": cpu.pid_of(mariadb)}).start()
        began = time.monotonic()
        wait_for(lambda: int(client.get(keys.undrained(0)) or 0) == 0 and not sum(
            (g["lag"] or 0) + g["pending"] for g in client.xinfo_groups(keys.stream(0))),
            "the drain")
        seconds = time.monotonic() - began
        worker_us = round((cpu.cpu_seconds(pid) - worker_cpu) / added * 1e6, 1)
        time.sleep(plan.ops_drain_tail_s)  # what MariaDB finishes after the last commit
        mariadb_cores = meter.stop()["mariadb"]
        mariadb_us = round(mariadb_cores * (time.monotonic() - began) / added * 1e6, 1)
    stored, still = count_events(stack) - rows_before, has_index()
    result = {"round": number, "label": label, "indexed": indexed, "rows_before": rows_before,
              "backlog": added, "drain_s": round(seconds, 3),
              "events_per_s": round(added / seconds), "worker_cpu_us_per_event": worker_us,
              "mariadb_cpu_us_per_event": mariadb_us, "mariadb_cores": mariadb_cores,
              "stored": stored, "index_unchanged": still == indexed,
              "ok": stored == added and still == indexed,
              "cpu_us_per_event": round(worker_us + mariadb_us, 1)}
    if not indexed:
        rows = count_events(stack)
        add_s = sql(mariadb, "og", f"ALTER TABLE events ADD INDEX {INDEX} (uuid_key), "
                                   "ALGORITHM=INPLACE, LOCK=NONE")[0]
        result.update(drop_index_s=round(drop_s, 3),
                      add_index={"rows": rows, "seconds": round(add_s, 2)})
    log.info("drain round %d %s: %d events/s, %s", number, label, result["events_per_s"],
             "ok" if result["ok"] else f"CHECK FAILED stored {stored} of {added}")
    return result


def _rounds(items, arm):
    """Per round, (the item with `arm` true, the one without)."""
    return [(a, b) if a[arm] else (b, a) for a, b in zip(items[::2], items[1::2])]


def _filter_summary(items):
    arms = {FILTER[on]: [i["window"] for i in items if i["on"] == on] for on in (True, False)}
    per = {}
    for label, windows in arms.items():
        redis = [w["redis"] for w in windows]
        aof = [(r["aof_bytes_added"], w["check"]["appended"]) for r, w in zip(redis, windows)
               if not r["aof_rewrote"] and (r["aof_bytes_added"] or 0) > 0]
        per[label] = {
            "us_per_2xx": med([us_per_2xx(w) for w in windows]),
            **{f"{role}_cores": med([w["cpu_cores"][role] for w in windows], digits)
               for role, digits in (("api", 2), ("redis", 3), ("others", 2))},
            **{k: med([r[k] for r in redis]) for k in ("redis_us_per_call", "script_calls_per_s")},
            "aof_bytes_per_write": med([added / appended for added, appended in aof if appended]),
            "aof_windows": len(aof),
            "used_memory_mib_after": med([r["used_memory_after"] / 2**20 for r in redis]),
            "seen_bits": redis[0]["seen_bits"]}
    flow = {label: median_of([w["results"][0] for w in windows]) for label, windows in arms.items()}
    on, off = flow.values()
    rounds = [(a["window"], b["window"]) for a, b in _rounds(items, "on")]
    return {
        "flow": flow, "per": per, "on_vs_off": ratio(on["ok_per_s"], off["ok_per_s"]),
        "on_vs_off_rounds": [ratio(a["results"][0]["ok_per_s"], b["results"][0]["ok_per_s"])
                             for a, b in rounds],
        "cost_ratio": ratio(per["filter off"]["us_per_2xx"], per["filter on"]["us_per_2xx"]),
        "cost_ratio_rounds": [ratio(us_per_2xx(b), us_per_2xx(a)) for a, b in rounds],
        "redis_us_per_call_rounds": {label: [w["redis"]["redis_us_per_call"] for w in windows]
                                     for label, windows in arms.items()},
        "checks_ok": all(i["window"]["check"]["ok"] for i in items)}


def _drain_summary(drains):
    per = {}
    for indexed in (True, False):
        mine = [d for d in drains if d["indexed"] == indexed]
        per[INDEXED[indexed]] = {
            "events_per_s": med([d["events_per_s"] for d in mine], 0),
            "rounds_events_per_s": [d["events_per_s"] for d in mine],
            **{k: med([d[k] for d in mine]) for k in
               ("worker_cpu_us_per_event", "mariadb_cpu_us_per_event", "cpu_us_per_event")},
            "rows_before": [d["rows_before"] for d in mine]}
    adds = [d["add_index"] for d in drains if "add_index" in d]
    (w, wo), rounds = per.values(), _rounds(drains, "indexed")
    return {"per": per, "backlog": drains[0]["backlog"],
            "checks_ok": all(d["ok"] for d in drains), "add_index": adds,
            "add_index_s": med([a["seconds"] for a in adds], 2),
            "with_vs_without": ratio(w["events_per_s"], wo["events_per_s"]),
            "with_vs_without_rounds": [ratio(a["events_per_s"], b["events_per_s"])
                                       for a, b in rounds],
            "cost_ratio": ratio(wo["cpu_us_per_event"], w["cpu_us_per_event"]),
            "cost_ratio_rounds": [ratio(b["cpu_us_per_event"], a["cpu_us_per_event"])
                                  for a, b in rounds]}


def summarize(result):
    def rebuild(store):
        windows = store["windows"]
        at = lambda get, digits=2: med([get(w) for w in windows], digits)
        return {"events": store["events"], "rows": at(lambda w: w["events_in_store"], 0),
                "command_s": at(lambda w: w["command_wall_s"]),
                "range_buckets_s": at(lambda w: w["phases"].get("range_buckets_s")),
                "uuid_filter_s": at(lambda w: w["phases"].get("uuid_filter_s")),
                "fenced_s": at(lambda w: w["fenced_s"], 3),
                "fence_seen_s": at(lambda w: w["fence_seen_s"]),
                "status_503": [w["status_503"] for w in windows],
                "after_vs_before": [w["after_vs_before"] for w in windows],
                "checks_ok": store["check"]["ok"]}

    return {"filter": _filter_summary(result["filter"]),
            "rebuild": [rebuild(store) for store in result["rebuilds"]],
            "drain": _drain_summary(result["drains"])}


def render(o, table):
    f, d, plan = o["summary"]["filter"], o["summary"]["drain"], o["plan"]
    xs = lambda values: listed(values, x)
    on, off = f["per"].values()
    filter_rows = [(label, n(k["seen_bits"]), n(row["ok_per_s"]), listed(row["rounds_ok_per_s"]),
                    n(row["p50_ms"], 1), n(row["p99_ms"], 1), n(row["errors"]),
                    n(k["api_cores"], 2), n(k["redis_cores"], 3), n(k["others_cores"], 2),
                    n(k["us_per_2xx"]), n(k["redis_us_per_call"], 1),
                    f"{n(k['aof_bytes_per_write'])} ({k['aof_windows']})",
                    n(k["used_memory_mib_after"], 1))
                   for (label, row), k in zip(f["flow"].items(), f["per"].values())]
    rebuild_rows = [(f"{store['events']:,}", w["round"], n(w["events_in_store"]),
                     f"**{w['command_wall_s']:.2f}**", n(w["phases"].get("create_tables_s"), 2),
                     n(w["phases"].get("range_buckets_s"), 2), w["range_bucket_days"],
                     n(w["phases"].get("uuid_filter_s"), 2), f"**{w['fenced_s']:.3f}**",
                     n(w["fence_seen_s"], 2), f"**{n(w['status_503'])}**",
                     n(w["writes_per_s_before"]), n(w["writes_per_s_during"]),
                     n(w["writes_per_s_after"]), x(w["after_vs_before"]),
                     n(w["max_undrained"]), w["settle_s"])
                    for store in o["rebuilds"] for w in store["windows"]]
    checks = [store["check"] for store in o["rebuilds"]]
    drain_rows = [(label, n(k["events_per_s"]), listed(k["rounds_events_per_s"]),
                   n(k["worker_cpu_us_per_event"], 1), n(k["mariadb_cpu_us_per_event"], 1),
                   n(k["cpu_us_per_event"], 1), listed(k["rows_before"]))
                  for label, k in d["per"].items()]
    redis_us = [listed(v, lambda v: n(v, 1)) for v in f["redis_us_per_call_rounds"].values()]
    text = [
        "## Operating costs of issue 11: the uuid filter, rebuild under load, the uuid index\n",
        "### (a) The uuid filter on /initial\n",
        f"{o['rounds']} interleaved round(s) of {o['duration_s']} s, request path, the store "
        "emptied before each window.\n",
        *table(("window", "filter bits", "2xx/s (median)", "per round", "p50 ms", "p99 ms",
                "errors", "API cores", "Redis cores", "other tenants", "all µs/2xx",
                "Redis µs/call", "AOF B/write", "Redis MiB"), filter_rows),
        f"\nOn / off: 2xx/s **{x(f['on_vs_off'])}** (per round {xs(f['on_vs_off_rounds'])}); "
        f"CPU per write {n(off['us_per_2xx'])} µs off, {n(on['us_per_2xx'])} µs on: cost ratio "
        f"**{x(f['cost_ratio'])}** (per round {xs(f['cost_ratio_rounds'])}), the throughput to "
        "expect with the filter, relative to without, at equal CPU. Redis µs per call per "
        f"round: on {redis_us[0]}, off {redis_us[1]}. og.events checks: "
        + ("all passed." if f["checks_ok"] else "**FAILED** (results.json)."),
        "\n### (b) `ingest rebuild` with the API serving and the worker running\n",
        f"The flow {plan['ops_rebuild_before_s']} s before, during and "
        f"{plan['ops_rebuild_after_s']} s after `python -m ingest rebuild`; phases from its "
        "summary JSON.\n",
        *table(("store events", "round", "rows at start", "command s", "create_tables s",
                "range buckets s", "days", "uuid filter s", "fenced_s", "fence seen s", "503",
                "writes/s before", "during", "after", "after/before", "max undrained",
                "drained after s"), rebuild_rows),
        "\nog.events after each store's windows: " + (
            "gained exactly what the API appended, nothing undrained."
            if all(c["ok"] for c in checks) else f"**check FAILED**: {checks}"),
        "\n### (c) The index events_by_uuid_key on the drain\n",
        f"One running worker drains {n(d['backlog'])} entries into the store (b) left, with the "
        "index and without it (dropped with SQL after the worker's start-up), rounds "
        "interleaved.\n",
        *table(("drain", "events/s (median)", "per round", "worker µs/event",
                "MariaDB µs/event", "both µs/event", "rows before, per round"), drain_rows),
        f"\nWith / without: events/s **{x(d['with_vs_without'])}** (per round "
        f"{xs(d['with_vs_without_rounds'])}); CPU cost ratio **{x(d['cost_ratio'])}** (per "
        f"round {xs(d['cost_ratio_rounds'])}: CPU per event without over with). Adding the "
        "index back online: " + "; ".join(f"{n(a['rows'])} rows in {a['seconds']:.2f} s"
                                          for a in d["add_index"])
        + ". Every drain stored its backlog exactly and left the index as it found it: "
        + ("yes." if d["checks_ok"] else "**no** (results.json)."),
    ]
    return "\n".join(text).split("\n")
