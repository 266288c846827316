"""What three choices of issue 11 cost: the uuid filter on the write path, `ingest rebuild`
under load, the index events_by_uuid_key on the drain (method: benchmarks/README.md)."""
import json
import logging
import os
import signal
import time

from benchmarks import cpu, load, preload, range_store
from harness.stack import PYTHON
from benchmarks.report import listed, n, x
from benchmarks.summary import med, median_of, ratio, us_per_2xx
from benchmarks.targets import Sampler, Target, count_events, reset_store
from core import keys

log = logging.getLogger("benchmarks")

REBUILD_BOUND_S = 600
"""Bound on one rebuild (and so on the wrk that runs around it)."""
DRAIN_BOUND_S = 600
INDEX = "events_by_uuid_key"
SAMPLE_S = 0.1

def run(stack, plan):
    filter_windows = []
    for number in range(1, plan.rounds + 1):
        first = number % 2 == 1  # filter on first in odd rounds
        for on in (first, not first):
            filter_windows.append(_filter_window(stack, plan, number, on))
    rebuilds = []
    for events in plan.ops_rebuild_events:
        rebuilds.append(_rebuild_store(stack, plan, events))
    drains = []
    for number in range(1, plan.rounds + 1):
        first = number % 2 == 1  # with the index first in odd rounds
        for indexed in (first, not first):
            drains.append(_drain(stack, plan, number, indexed))
    return {"rounds": plan.rounds, "duration_s": plan.duration, "filter": filter_windows,
            "rebuilds": rebuilds, "drains": drains,
            "summary": summarize({"filter": filter_windows, "rebuilds": rebuilds, "drains": drains})}


# --- (a) the uuid filter ------------------------------------------------------------------

def _filter_label(on):
    return "filter on" if on else "filter off"


def _redis_info(client):
    info = client.info()
    return {"used_memory": info["used_memory"], "aof_current_size": info.get("aof_current_size"),
            "aof_base_size": info.get("aof_base_size"), "aof_rewrites": info.get("aof_rewrites")}


def _filter_window(stack, plan, number, on):
    label = _filter_label(on)
    settings = {} if on else {"OG_UUID_FILTER_MB": 0}
    with Target(stack, "redis", worker=False, settings=settings, label=label) as target:
        url = target.url
        target.measure(lambda: load.start_wrk(url, "conversation", plan.warmup))
        target.settle()
        before = _redis_info(target.redis)
        window = target.measure(lambda: load.start_wrk(url, "conversation", plan.duration))
        after = _redis_info(target.redis)
        window["settle_s"] = target.settle()
        window["check"] = target.check()
        bits = target.redis.get(keys.seen_bits(0))
        seen_bytes = target.redis.strlen(keys.seen(0))
    result = window["results"][0]
    statuses = result["statuses"]
    calls = sum(statuses.get(s, 0) for s in (200, 404, 409))
    cores = window["cpu_cores"]
    appended = result["counters"].get("initial_ok", 0) + result["counters"].get("followup_ok", 0)
    window["redis"] = {
        "seen_bits": int(bits) if bits is not None else None, "seen_bytes": seen_bytes,
        "script_calls_per_s": round(calls / result["seconds"], 1),
        "redis_us_per_call": round(cores["redis"] / (calls / result["seconds"]) * 1e6, 1) if calls else None,
        "used_memory_after": after["used_memory"],
        "used_memory_added": after["used_memory"] - before["used_memory"],
        "aof_bytes_added": (after["aof_current_size"] - before["aof_current_size"])
        if after["aof_current_size"] is not None else None,
        # Redis 7.0 has no rewrite counter: a rewrite shows as a new base or a smaller file.
        "aof_rewrote": (after["aof_rewrites"] != before["aof_rewrites"]
                        or after["aof_base_size"] != before["aof_base_size"]
                        or (after["aof_current_size"] or 0) < (before["aof_current_size"] or 0)),
        "writes_seen_by_wrk": appended,
    }
    r = window["redis"]
    log.info("round %d %-10s %8.0f ok/s  p99 %s ms  errors %d  (API %.2f cores, Redis %.2f = %s µs/call,"
             " others %.2f)  filter %s bits, AOF +%s B", number, label, result["ok_per_s"],
             result["p99_ms"], result["errors"], cores["api"], cores["redis"], r["redis_us_per_call"],
             cores["others"], r["seen_bits"], r["aof_bytes_added"])
    return {"round": number, "label": label, "on": on, "window": window}


# --- (b) ingest rebuild with the API serving -------------------------------------------------

class RedisTimeline(Sampler):
    """Every SAMPLE_S: entries ever appended to partition 0's stream, whether the rebuild's
    fence is up, the undrained counter (one pipelined round trip)."""

    interval = SAMPLE_S

    def __init__(self, client):
        super().__init__()
        self.redis = client

    def sample(self, at):
        pipe = self.redis.pipeline(transaction=False)
        pipe.xinfo_stream(keys.stream(0))
        pipe.exists(keys.fence(0))
        pipe.get(keys.undrained(0))
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

    def fence_span(self):
        up = [s[0] for s in self.samples if s[2]]
        return (up[0], up[-1]) if up else (None, None)


def _rebuild_store(stack, plan, events):
    reset_store(stack, "redis")
    connection = stack.mariadb().connect(database="og")
    try:
        history = range_store.generate(connection, events, range_store.window_end())
    finally:
        connection.close()
    windows = []
    with Target(stack, "redis", worker=True, reset=False, label=f"rebuild@{events}") as target:
        url = target.url
        target.measure(lambda: load.start_wrk(url, "conversation", plan.warmup))
        target.settle()
        for number in range(1, plan.ops_rebuild_rounds + 1):
            windows.append(_rebuild_window(stack, plan, target, events, number))
        check = target.check()
    stored = count_events(stack)
    return {"events": events, "history": {k: history[k] for k in
                                          ("events", "conversations", "followups", "seconds",
                                           "from", "to")},
            "windows": windows, "check": check, "events_after": stored}


def _rebuild_window(stack, plan, target, events, number):
    url = target.url
    rows_before = count_events(stack)
    meter = cpu.CpuMeter(target.cpu_roles()).start()
    with RedisTimeline(target.redis) as timeline:
        flow = load.start_wrk(url, "conversation",
                              plan.ops_rebuild_before_s + REBUILD_BOUND_S + plan.ops_rebuild_after_s)
        try:
            time.sleep(plan.ops_rebuild_before_s)
            began = timeline.now()
            command = load.LoadProcess([PYTHON, "-m", "ingest", "rebuild"], REBUILD_BOUND_S, target.env)
            code, text, rebuild_cpu, wall = command.wait()
            ended = timeline.now()
            time.sleep(plan.ops_rebuild_after_s)
            flow.process.send_signal(signal.SIGINT)  # wrk stops and reports, as at its -d
            result = load.wrk_result(flow)
        finally:
            flow.kill()
        stopped = timeline.now()
    cores = meter.stop()
    target.accepted += result["counters"].get("initial_ok", 0) + result["counters"].get("followup_ok", 0)
    if code != 0:
        raise RuntimeError(f"ingest rebuild exited {code}:\n{text[-3000:]}")
    summary = json.loads(next(l for l in text.splitlines() if l.startswith("{")))
    phases = summary["phases"]  # the command's own seconds per phase
    settle_s = target.settle()
    fence_seen = timeline.fence_span()
    samples = timeline.samples
    undrained_max = max((s[3] for s in samples), default=0)
    before = timeline.rate(1.0, began)
    during = timeline.rate(began, ended)
    after = timeline.rate(ended + 1.0, stopped)
    statuses = result["statuses"]
    out = {
        "round": number, "events_in_store": rows_before,
        "command_wall_s": round(wall, 3), "command_cpu_s": round(rebuild_cpu, 2),
        "phases": phases, "summary": summary, "fenced_s": summary.get("fenced_s"),
        "range_bucket_days": summary.get("range_bucket_days"),
        "fence_seen_s": round(fence_seen[1] - fence_seen[0] + SAMPLE_S, 2) if fence_seen[0] is not None else None,
        "writes_per_s_before": before, "writes_per_s_during": during, "writes_per_s_after": after,
        "after_vs_before": ratio(after, before),
        "status_503": statuses.get(503, 0), "statuses": statuses, "socket_errors": result["socket_errors"],
        "wrk": {k: result[k] for k in ("seconds", "requests", "ok", "ok_per_s", "errors", "p50_ms",
                                       "p99_ms", "p999_ms", "max_ms", "generator_cores")},
        "rebuild_started_s": round(began, 2), "rebuild_ended_s": round(ended, 2),
        "window_s": round(stopped, 2), "max_undrained": undrained_max, "settle_s": settle_s,
        "cpu_cores": cores, "timeline": samples,
    }
    log.info("rebuild %d events round %d: command %.2f s (range buckets %.2f s, uuid filter %.2f s,"
             " fenced %.3f s), 503s %d; accepted writes/s before %s, during %s, after %s;"
             " max undrained %d", rows_before, number, wall, phases.get("range_buckets_s", 0),
             phases.get("uuid_filter_s", 0), out["fenced_s"] or 0, out["status_503"], before,
             during, after, undrained_max)
    return out


# --- (c) events_by_uuid_key on the drain -----------------------------------------------------------

def _sql(stack, statement):
    connection = stack.mariadb().connect(database="og")
    try:
        with connection.cursor() as cursor:
            began = time.monotonic()
            cursor.execute(statement)
            return time.monotonic() - began
    finally:
        connection.close()


def _has_index(stack):
    connection = stack.mariadb().connect(database="og")
    try:
        with connection.cursor() as cursor:
            cursor.execute("SHOW INDEX FROM events")
            return INDEX in {row[2] for row in cursor.fetchall()}
    finally:
        connection.close()


def _drain(stack, plan, number, indexed):
    """A running worker (`ingest run`), its start-up migration done (its consumer group made
    after it), the index dropped from outside for the 'without' arm, the worker paused
    (SIGSTOP) while the backlog is XADDed, then resumed and timed until it is drained."""
    label = "with index" if indexed else "without index"
    client = stack.redis().client()
    client.delete(keys.stream(0))  # drained and empty: its group is made again at start-up
    rows_before = count_events(stack)
    try:
        with stack.ingest_worker(stack.env("redis"), f"ops-{number}-{label.replace(' ', '-')}") as worker:
            _wait(lambda: client.exists(keys.stream(0)) and client.xinfo_groups(keys.stream(0)), "start-up")
            if not indexed:
                drop_s = _sql(stack, f"ALTER TABLE events DROP INDEX {INDEX}")
            if _has_index(stack) != indexed:
                raise RuntimeError(f"{label}: the index is {'missing' if indexed else 'there'}")
            pid = worker.process.pid
            os.kill(pid, signal.SIGSTOP)
            try:
                # The same size and shape each drain, other uuids (seeded by round and arm).
                added = preload.into_streams(client, plan.ops_drain_backlog, 1, seed=2 * number + indexed)
            finally:
                os.kill(pid, signal.SIGCONT)
            worker_cpu = cpu.cpu_seconds(pid)
            meter = cpu.CpuMeter({"mariadb": cpu.pid_of(stack.started_mariadb())}).start()
            began = time.monotonic()
            _wait(lambda: int(client.get(keys.undrained(0)) or 0) == 0 and not sum(
                (g["lag"] or 0) + g["pending"] for g in client.xinfo_groups(keys.stream(0))), "the drain")
            seconds = time.monotonic() - began
            worker_cpu = cpu.cpu_seconds(pid) - worker_cpu
            time.sleep(plan.ops_drain_tail_s)  # what MariaDB finishes after the last commit
            mariadb_cores = meter.stop()["mariadb"]
            metered_s = time.monotonic() - began
    finally:
        client.close()
    stored = count_events(stack) - rows_before
    still = _has_index(stack)
    result = {"round": number, "label": label, "indexed": indexed, "rows_before": rows_before,
              "backlog": added, "drain_s": round(seconds, 3), "events_per_s": round(added / seconds),
              "worker_cpu_us_per_event": round(worker_cpu / added * 1e6, 1),
              "mariadb_cpu_us_per_event": round(mariadb_cores * metered_s / added * 1e6, 1),
              "mariadb_cores": mariadb_cores, "stored": stored, "index_unchanged": still == indexed,
              "ok": stored == added and still == indexed}
    result["cpu_us_per_event"] = round(result["worker_cpu_us_per_event"] + result["mariadb_cpu_us_per_event"], 1)
    if not indexed:
        result["drop_index_s"] = round(drop_s, 3)
        rows = count_events(stack)
        add_s = _sql(stack, f"ALTER TABLE events ADD INDEX {INDEX} (uuid_key), ALGORITHM=INPLACE, LOCK=NONE")
        result["add_index"] = {"rows": rows, "seconds": round(add_s, 2)}
    log.info("drain round %d %-13s %7d events on %d rows: %7d events/s (worker %.1f + MariaDB %.1f µs"
             " CPU/event) %s", number, label, added, rows_before, result["events_per_s"],
             result["worker_cpu_us_per_event"], result["mariadb_cpu_us_per_event"],
             "ok" if result["ok"] else f"CHECK FAILED stored {stored}")
    return result


def _wait(predicate, what, bound_s=DRAIN_BOUND_S):
    deadline = time.monotonic() + bound_s
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"operations: {what} did not come within {bound_s} s")
        time.sleep(0.05)


# --- summary --------------------------------------------------------------------------------------

def _by_round(items, key):
    rounds = {}
    for item in items:
        rounds.setdefault(item["round"], {})[item[key]] = item
    return [pair for _, pair in sorted(rounds.items()) if len(pair) == 2]


def _filter_summary(windows):
    flows = {}
    for label in (_filter_label(True), _filter_label(False)):
        mine = [w["window"]["results"][0] for w in windows if w["label"] == label]
        if mine:
            flows[label] = median_of(mine)
    if len(flows) < 2:
        return None
    pairs = _by_round(windows, "on")
    on, off = _filter_label(True), _filter_label(False)
    per = {label: {
        "us_per_2xx": med([us_per_2xx(w["window"]) for w in windows if w["label"] == label]),
        "api_cores": med([w["window"]["cpu_cores"]["api"] for w in windows if w["label"] == label], 2),
        "redis_cores": med([w["window"]["cpu_cores"]["redis"] for w in windows if w["label"] == label], 3),
        "others_cores": med([w["window"]["cpu_cores"]["others"] for w in windows if w["label"] == label], 2),
        "redis_us_per_call": med([w["window"]["redis"]["redis_us_per_call"] for w in windows
                                      if w["label"] == label]),
        "script_calls_per_s": med([w["window"]["redis"]["script_calls_per_s"] for w in windows
                                       if w["label"] == label]),
        "aof_bytes_per_write": med([
            w["window"]["redis"]["aof_bytes_added"] / w["window"]["check"]["appended"]
            for w in windows if w["label"] == label and not w["window"]["redis"]["aof_rewrote"]
            and (w["window"]["redis"]["aof_bytes_added"] or 0) > 0
            and w["window"]["check"]["appended"]]),
        "aof_windows": sum(1 for w in windows if w["label"] == label
                           and not w["window"]["redis"]["aof_rewrote"]
                           and (w["window"]["redis"]["aof_bytes_added"] or 0) > 0),
        "used_memory_mib_after": med([w["window"]["redis"]["used_memory_after"] / 2**20
                                          for w in windows if w["label"] == label]),
        "seen_bits": next(w["window"]["redis"]["seen_bits"] for w in windows if w["label"] == label),
    } for label in (on, off)}
    return {
        "flow": flows, "per": per,
        "on_vs_off": ratio(flows[on]["ok_per_s"], flows[off]["ok_per_s"]),
        "on_vs_off_rounds": [ratio(p[True]["window"]["results"][0]["ok_per_s"],
                                   p[False]["window"]["results"][0]["ok_per_s"]) for p in pairs],
        "cost_ratio": ratio(per[off]["us_per_2xx"], per[on]["us_per_2xx"]),
        "cost_ratio_rounds": [ratio(us_per_2xx(p[False]["window"]), us_per_2xx(p[True]["window"]))
                              for p in pairs],
        "redis_us_per_call_rounds": {label: [w["window"]["redis"]["redis_us_per_call"] for w in windows
                                             if w["label"] == label] for label in (on, off)},
        "checks_ok": all(w["window"]["check"]["ok"] for w in windows),
    }


def _drain_summary(drains):
    if not drains:
        return None
    pairs = _by_round(drains, "indexed")
    per = {}
    for indexed in (True, False):
        mine = [d for d in drains if d["indexed"] == indexed]
        if not mine:
            continue
        per["with index" if indexed else "without index"] = {
            "events_per_s": med([d["events_per_s"] for d in mine], 0),
            "rounds_events_per_s": [d["events_per_s"] for d in mine],
            "worker_cpu_us_per_event": med([d["worker_cpu_us_per_event"] for d in mine]),
            "mariadb_cpu_us_per_event": med([d["mariadb_cpu_us_per_event"] for d in mine]),
            "cpu_us_per_event": med([d["cpu_us_per_event"] for d in mine]),
            "rows_before": [d["rows_before"] for d in mine],
        }
    adds = [d["add_index"] for d in drains if "add_index" in d]
    out = {"per": per, "backlog": drains[0]["backlog"],
           "checks_ok": all(d["ok"] for d in drains), "add_index": adds,
           "add_index_s": med([a["seconds"] for a in adds], 2)}
    if len(per) == 2:
        w, wo = per["with index"], per["without index"]
        out.update({
            "with_vs_without": ratio(w["events_per_s"], wo["events_per_s"]),
            "with_vs_without_rounds": [ratio(p[True]["events_per_s"], p[False]["events_per_s"])
                                       for p in pairs],
            "cost_ratio": ratio(wo["cpu_us_per_event"], w["cpu_us_per_event"]),
            "cost_ratio_rounds": [ratio(p[False]["cpu_us_per_event"], p[True]["cpu_us_per_event"])
                                  for p in pairs],
        })
    return out


def summarize(result):
    filter_windows, rebuilds, drains = result["filter"], result["rebuilds"], result["drains"]
    sizes = []
    for store in rebuilds:
        windows = store["windows"]
        sizes.append({
            "events": store["events"],
            "rows": med([w["events_in_store"] for w in windows], 0),
            "command_s": med([w["command_wall_s"] for w in windows], 2),
            "range_buckets_s": med([w["phases"].get("range_buckets_s") for w in windows], 2),
            "uuid_filter_s": med([w["phases"].get("uuid_filter_s") for w in windows], 2),
            "fenced_s": med([w["fenced_s"] for w in windows], 3),
            "fence_seen_s": med([w["fence_seen_s"] for w in windows], 2),
            "status_503": [w["status_503"] for w in windows],
            "after_vs_before": [w["after_vs_before"] for w in windows],
            "checks_ok": store["check"]["ok"] if store["check"] else None,
        })
    return {"filter": _filter_summary(filter_windows), "rebuild": sizes,
            "drain": _drain_summary(drains)}


def render(o, table):
    s, plan = o["summary"], o["plan"]
    parts = ["## Operating costs of issue 11: the uuid filter, rebuild under load, the uuid index\n"]
    f = s.get("filter")
    if f:
        on, off = f["per"]["filter on"], f["per"]["filter off"]
        rows = []
        for label, row in f["flow"].items():
            k = f["per"][label]
            rows.append((label, n(k["seen_bits"]), n(row["ok_per_s"]), listed(row["rounds_ok_per_s"]),
                         n(row["p50_ms"], 1), n(row["p99_ms"], 1), n(row["errors"]),
                         n(k["api_cores"], 2), n(k["redis_cores"], 3), n(k["others_cores"], 2),
                         n(k["us_per_2xx"]), n(k["redis_us_per_call"], 1),
                         f"{n(k['aof_bytes_per_write'])} ({k.get('aof_windows', '–')})",
                         n(k["used_memory_mib_after"], 1)))
        parts += [
            "### (a) The uuid filter on /initial\n",
            f"{o.get('rounds', plan['rounds'])} interleaved round(s) of {o.get('duration_s', plan['duration'])} s, "
            "request path, the store emptied before each window.\n",
            "\n".join(table(("window", "filter bits", "2xx/s (median)", "per round", "p50 ms", "p99 ms",
                    "errors", "API cores", "Redis cores", "other tenants", "all µs/2xx",
                    "Redis µs/call", "AOF B/write", "Redis MiB"), rows)),
            f"\nOn / off: 2xx/s **{x(f['on_vs_off'])}** (per round {_r(f['on_vs_off_rounds'])}); "
            f"CPU per write {n(off['us_per_2xx'])} µs off, {n(on['us_per_2xx'])} µs on: cost "
            f"ratio **{x(f['cost_ratio'])}** (per round {_r(f['cost_ratio_rounds'])}), the "
            "throughput to expect with the filter, relative to without, at equal CPU. Redis µs "
            f"per call per round: on {listed(f['redis_us_per_call_rounds']['filter on'], lambda v: n(v, 1))}, "
            f"off {listed(f['redis_us_per_call_rounds']['filter off'], lambda v: n(v, 1))}. "
            "og.events checks: " + ("all passed." if f["checks_ok"] else "**FAILED** (results.json)."),
        ]
    if s.get("rebuild"):
        rows = []
        for store in o["rebuilds"]:
            for w in store["windows"]:
                p = w["phases"]
                rows.append((f"{store['events']:,}", w["round"], n(w["events_in_store"]),
                             f"**{w['command_wall_s']:.2f}**", n(p.get("create_tables_s"), 2),
                             n(p.get("range_buckets_s"), 2), w["range_bucket_days"],
                             n(p.get("uuid_filter_s"), 2), f"**{w['fenced_s']:.3f}**",
                             n(w["fence_seen_s"], 2),
                             f"**{n(w['status_503'])}**", n(w["writes_per_s_before"]),
                             n(w["writes_per_s_during"]), n(w["writes_per_s_after"]),
                             x(w["after_vs_before"]), n(w["max_undrained"]), w["settle_s"]))
        checks = [store["check"] for store in o["rebuilds"] if store["check"]]
        parts += [
            "\n### (b) `ingest rebuild` with the API serving and the worker running\n",
            f"The flow {plan['ops_rebuild_before_s']} s before, during and {plan['ops_rebuild_after_s']} s after "
            "`python -m ingest rebuild`; phases from its summary JSON.\n",
            "\n".join(table(("store events", "round", "rows at start", "command s", "create_tables s",
                    "range buckets s", "days", "uuid filter s", "fenced_s", "fence seen s",
                    "503", "writes/s before", "during", "after",
                    "after/before", "max undrained", "drained after s"), rows)),
            "\nog.events after each store's windows: " + (
                "gained exactly what the API appended, nothing undrained."
                if checks and all(c["ok"] for c in checks) else f"**check FAILED**: {checks}"),
        ]
    d = s.get("drain")
    if d:
        rows = [(label, n(k["events_per_s"]), listed(k["rounds_events_per_s"]),
                 n(k["worker_cpu_us_per_event"], 1), n(k["mariadb_cpu_us_per_event"], 1),
                 n(k["cpu_us_per_event"], 1), listed(k["rows_before"]))
                for label, k in d["per"].items()]
        adds = "; ".join(f"{n(a['rows'])} rows in {a['seconds']:.2f} s" for a in d["add_index"])
        parts += [
            "\n### (c) The index events_by_uuid_key on the drain\n",
            f"One running worker drains {n(d['backlog'])} entries into the store (b) left, with the index and "
            "without it (dropped with SQL after the worker's start-up), rounds interleaved.\n",
            "\n".join(table(("drain", "events/s (median)", "per round", "worker µs/event",
                    "MariaDB µs/event", "both µs/event", "rows before, per round"), rows)),
            f"\nWith / without: events/s **{x(d.get('with_vs_without'))}** (per round "
            f"{_r(d.get('with_vs_without_rounds', []))}); CPU cost ratio "
            f"**{x(d.get('cost_ratio'))}** (per round {_r(d.get('cost_ratio_rounds', []))}: "
            "CPU per event without over with). Adding the index back online: "
            f"{adds}. Every drain stored its "
            "backlog exactly and left the index as it found it: "
            + ("yes." if d["checks_ok"] else "**no** (results.json)."),
        ]
    return "\n".join(parts).split("\n")


def _r(values):
    return listed(values, x)
