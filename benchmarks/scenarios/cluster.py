"""Redis Cluster vs single Redis: the request path, Redis CPU per script call, one worker's
drain (method: benchmarks/README.md)."""
import logging
import re
import time
from statistics import median

from benchmarks import cpu, load, plots, preload
from benchmarks.report import listed, n, x
from benchmarks.scenarios.drain import DRAIN_BOUND_S, drain_span
from harness.stack import CLUSTER, PYTHON
from benchmarks.summary import add_ratios, median_of, ratio
from benchmarks.targets import Target, count_events, database_name, reset_store, stream_length
from core import keys

log = logging.getLogger("benchmarks")

CALL_STATUSES = (200, 404, 409)
"""Answers of a request whose Lua script ran (one EVALSHA each): accepted, unknown or
already-followed-up uuid. (A 503 may or may not have reached Redis; the flow gets none
when all is well.)"""
DRAIN_SEED = 424_242
FLUSHED = re.compile(r": flushed (\d+) events")
IDLE_S = 5
"""Redis CPU of the idle stores (cluster bus, replication pings, cron) is measured this long."""


def variants(plan):
    """(label, store, product settings) of the request-path windows, in round order."""
    cluster = {"OG_STREAM_PARTITIONS": plan.cluster_partitions}
    return (("single", "main", {"OG_STREAM_PARTITIONS": 1}),
            ("cluster", CLUSTER, {**cluster, "OG_REDIS_WAIT_REPLICAS": 0}),
            ("cluster+wait1", CLUSTER, {**cluster, "OG_REDIS_WAIT_REPLICAS": 1}))


def run(stack, plan):
    began = time.monotonic()
    cluster = stack.redis_cluster()
    started_s = round(time.monotonic() - began, 2)
    layout = _layout(cluster, plan.cluster_partitions)
    log.info("cluster: %d nodes up in %.1f s: %s", len(cluster.nodes), started_s,
             ", ".join(f"{n['port']} {n['role']}" + (f" (partitions {n['partitions']})"
                                                      if n["role"] == "master" else "")
                       for n in layout))
    idle = _idle(stack, cluster)
    log.info("idle Redis CPU over %d s: cluster %.3f cores (masters %.3f, replicas %.3f), "
             "single %.3f", IDLE_S, idle["masters"] + idle["replicas"], idle["masters"],
             idle["replicas"], idle["single"])
    windows, drains = [], []
    for number in range(1, plan.rounds + 1):
        for label, store, settings in variants(plan):
            windows.append(_window(stack, plan, label, store, settings, number))
        for label, store, partitions in (("single", "main", 1),
                                         ("cluster", CLUSTER, plan.cluster_partitions)):
            drains.append(_drain(stack, plan, label, store, partitions, number))
    return {"partitions": plan.cluster_partitions, "nodes": layout, "start_s": started_s,
            "idle_cores": idle,
            "node_timeout_ms": cluster.node_timeout_ms, "windows": windows, "drains": drains,
            "summary": summarize({"windows": windows, "drains": drains})}


def _layout(cluster, partitions):
    """Each node's role, and which partitions (hash tags, so slots) each master serves."""
    served = {}
    for partition in range(partitions):
        owner = cluster.master_of_slot(keys.slot(keys.stream(partition)))
        served.setdefault(owner.port, []).append(partition)
    masters = {node.port for node in cluster.masters()}
    return [{"port": node.port, "role": "master" if node.port in masters else "replica",
             **({"partitions": served.get(node.port, [])} if node.port in masters else {})}
            for node in cluster.nodes]


def _idle(stack, cluster):
    """Cores the idle stores use (the baseline under the windows' Redis CPU)."""
    meter = cpu.CpuMeter({"masters": cpu.pids_of(cluster.masters()),
                          "replicas": cpu.pids_of(cluster.replicas()),
                          "single": cpu.pid_of(stack.redis())}).start()
    time.sleep(IDLE_S)
    cores = meter.stop()
    return {role: cores[role] for role in ("masters", "replicas", "single")}


# --- the request path -------------------------------------------------------------------

def _window(stack, plan, label, store, settings, number):
    with Target(stack, "redis", store=store, settings=settings, label=label) as target:
        url = target.url
        warmup = target.measure(lambda: load.start_wrk(url, "conversation", plan.warmup))
        target.settle()
        flow = target.measure(lambda: load.start_wrk(url, "conversation", plan.duration))
        flow["settle_s"] = target.settle()
        check = target.check()
    result = flow["results"][0]
    _progress(number, label, result, flow["cpu_cores"])
    statuses = {}
    for r in (warmup["results"][0], result):
        for status, count in r["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
    check["statuses"] = {str(k): v for k, v in sorted(statuses.items())}
    check["unexpected_statuses"] = {str(k): v for k, v in statuses.items()
                                    if not (200 <= k < 300 or k == 503)}
    check["status_503"] = statuses.get(503, 0)
    if check["unexpected_statuses"]:
        log.warning("%s: answers other than 2xx and 503: %s", label, check["unexpected_statuses"])
        check["ok"] = False
    if store == CLUSTER:
        check["cluster_problems"] = _cluster_problems(stack.redis_cluster())
        check["ok"] = check["ok"] and not check["cluster_problems"]
    flow.pop("backlog", None)  # worker stopped: the backlog is just what was appended
    return {"round": number, "label": label, "store": store, "settings": settings,
            "flow": flow, "derived": derive(flow), "check": check}


def _cluster_problems(cluster):
    """[] if the cluster is as it was (3 masters, a replica each in sync); else what is
    wrong, after which it is brought back so that the next window is not disturbed."""
    problems = cluster.problems()
    if problems:
        log.warning("cluster unhealthy after a window: %s", problems)
        cluster.ensure_healthy()
    return problems


def _progress(number, label, result, cores):
    redis = cores["redis"] + cores.get("replicas", 0)
    log.info("round %d %-14s %8.0f ok/s  p50 %s  p99 %s  p99.9 %s ms  errors %d  "
             "(API %.2f, Redis %.2f cores, others %.2f; wrk %.2f)", number, label,
             result["ok_per_s"], result["p50_ms"], result["p99_ms"], result["p999_ms"],
             result["errors"], cores["api"], redis, cores["others"], result["generator_cores"])


def derive(window):
    """Script calls/s and what they cost Redis, from one window's wrk result and CPU."""
    result, cores = window["results"][0], window["cpu_cores"]
    calls = sum(result["statuses"].get(s, 0) for s in CALL_STATUSES) / result["seconds"]
    masters, replicas = cores["redis"], cores.get("replicas", 0.0)
    redis = masters + replicas
    return {
        "script_calls_per_s": round(calls, 1),
        "redis_cores": round(redis, 3),
        "redis_master_cores": round(masters, 3),
        "redis_replica_cores": round(replicas, 3),
        "redis_us_per_call": round(redis / calls * 1e6, 1) if calls else None,
        "calls_per_redis_core": round(calls / redis) if redis else None,
        "calls_per_master_core": round(calls / masters) if masters else None,
        "api_us_per_2xx": round(cores["api"] / result["ok_per_s"] * 1e6) if result["ok_per_s"] else None,
    }


# --- the drain --------------------------------------------------------------------------

def _drain(stack, plan, label, store, partitions, number):
    reset_store(stack, "redis", store)
    client = stack.redis_client(store)
    try:
        began = time.monotonic()
        added = preload.into_streams(client, plan.cluster_drain_backlog, partitions,
                                     seed=DRAIN_SEED + number)
        fill_s = time.monotonic() - began
        # debug: the worker logs each batch's size ("flushed N events"), which tells how
        # many events a batch took from P streams.
        env = stack.env("redis", redis=store, database=database_name(store),
                        OG_STREAM_PARTITIONS=partitions, OG_LOG_LEVEL="debug")
        if store == CLUSTER:
            redis_pids = cpu.pids_of(stack.redis_cluster().nodes)
        else:
            redis_pids = cpu.pid_of(stack.started_redis(store))
        meter = cpu.CpuMeter({"mariadb": cpu.pid_of(stack.started_mariadb()),
                              "redis": redis_pids}).start()
        worker = load.LoadProcess([PYTHON, "-m", "ingest", "run", "--burst"], DRAIN_BOUND_S, env)
        code, text, worker_cpu, wall = worker.wait()
        cores = meter.stop()
        lines, seconds = drain_span(code, text, f"{label}: ingest run --burst")
        batches = [int(m.group(1)) for m in map(FLUSHED.search, lines) if m]
        stored = count_events(stack, store)
        left = stream_length(client, partitions)
    finally:
        client.close()
    result = {
        "round": number, "label": label, "partitions": partitions, "backlog": added,
        "fill_s": round(fill_s, 2), "fill_per_s": round(added / fill_s),
        "drain_s": round(seconds, 3), "events_per_s": round(added / seconds),
        "process_wall_s": round(wall, 2),
        "worker_cpu_us_per_event": round(worker_cpu / added * 1e6, 1),
        "worker_cores": round(worker_cpu / wall, 2), "mariadb_cores": cores["mariadb"],
        "redis_cores": cores["redis"], "machine_cores": cores["machine"],
        "batches": len(batches), "mean_batch": round(sum(batches) / len(batches)) if batches else None,
        "max_batch": max(batches, default=None),
        "stored": stored, "stream_length_after": left,
        "ok": stored == added and left == 0,
    }
    log.info("round %d drain %-8s %8d events over %2d stream(s) in %6.2f s = %7d events/s "
             "(worker %.1f µs CPU/event; MariaDB %.2f, Redis %.2f cores; %d batches, max %s) "
             "stored %s", number,
             label, added, partitions, result["drain_s"], result["events_per_s"],
             result["worker_cpu_us_per_event"], result["mariadb_cores"], result["redis_cores"],
             result["batches"], result["max_batch"],
             "ok" if result["ok"] else f"MISMATCH {stored} (left {left})")
    return result


# --- summary ----------------------------------------------------------------------------

def _median(values, digits=0):
    known = [v for v in values if v is not None]
    if not known:
        return None
    value = median(known)
    return round(value, digits) if digits else round(value)


def summarize(result):
    windows, drains = result["windows"], result["drains"]
    labels = list(dict.fromkeys(w["label"] for w in windows))
    flow = add_ratios({label: median_of([w["flow"]["results"][0] for w in windows
                                         if w["label"] == label]) for label in labels},
                      references=("single", "cluster"))
    for label, row in flow.items():
        mine = [w for w in windows if w["label"] == label]
        row["status_503"] = sum(w["check"]["status_503"] for w in mine)
        row["unexpected_statuses"] = sum(sum(w["check"]["unexpected_statuses"].values()) for w in mine)
        row["socket_errors"] = sum(sum(v for k, v in w["flow"]["results"][0]["socket_errors"].items()
                                       if k != "status") for w in mine)
    cost = {}
    for label in labels:
        mine = [w for w in windows if w["label"] == label]
        cores = [w["flow"]["cpu_cores"] for w in mine]
        derived = [w["derived"] for w in mine]
        cost[label] = {
            "api_cores": _median([c["api"] for c in cores], 2),
            "redis_cores": _median([d["redis_cores"] for d in derived], 2),
            "redis_master_cores": _median([d["redis_master_cores"] for d in derived], 2),
            "redis_replica_cores": _median([d["redis_replica_cores"] for d in derived], 2),
            "others_cores": _median([c["others"] for c in cores], 2),
            "machine_cores": _median([c["machine"] for c in cores], 2),
            "script_calls_per_s": _median([d["script_calls_per_s"] for d in derived]),
            "redis_us_per_call": _median([d["redis_us_per_call"] for d in derived], 1),
            "calls_per_redis_core": _median([d["calls_per_redis_core"] for d in derived]),
            "calls_per_master_core": _median([d["calls_per_master_core"] for d in derived]),
            "api_us_per_2xx": _median([d["api_us_per_2xx"] for d in derived]),
            "rounds_calls_per_redis_core": [d["calls_per_redis_core"] for d in derived],
        }
    drain = {}
    for label in dict.fromkeys(d["label"] for d in drains):
        mine = [d for d in drains if d["label"] == label]
        drain[label] = {
            "partitions": mine[0]["partitions"], "backlog": mine[0]["backlog"],
            "events_per_s": _median([d["events_per_s"] for d in mine]),
            "rounds_events_per_s": [d["events_per_s"] for d in mine],
            "worker_cpu_us_per_event": _median([d["worker_cpu_us_per_event"] for d in mine], 1),
            "worker_cores": _median([d["worker_cores"] for d in mine], 2),
            "mariadb_cores": _median([d["mariadb_cores"] for d in mine], 2),
            "redis_cores": _median([d["redis_cores"] for d in mine], 2),
            "fill_per_s": _median([d["fill_per_s"] for d in mine]),
            "mean_batch": _median([d.get("mean_batch") for d in mine]),
            "max_batch": max((d.get("max_batch") or 0 for d in mine), default=None),
            "ok": all(d["ok"] for d in mine),
        }
    if "single" in drain and "cluster" in drain:
        drain["cluster"]["vs_single"] = ratio(drain["cluster"]["events_per_s"],
                                              drain["single"]["events_per_s"])
        drain["cluster"]["vs_single_rounds"] = [
            ratio(c, s) for c, s in zip(drain["cluster"]["rounds_events_per_s"],
                                        drain["single"]["rounds_events_per_s"])]
    return {"flow": flow, "cost": cost, "drain": drain,
            "checks": [dict(w["check"], label=w["label"], round=w["round"]) for w in windows]}


NAMES = {"single": "(a) single Redis, P=1 (reference)", "cluster": "(b) cluster, P={p}, WAIT 0",
         "cluster+wait1": "(c) cluster, P={p}, WAIT 1"}


def render(c, table):
    s, p = c["summary"], c["partitions"]
    name = {label: what.format(p=p) for label, what in NAMES.items()}
    flow_rows = [(name.get(l, l), n(r["ok_per_s"]), listed(r["rounds_ok_per_s"]),
                  x(r.get("vs_single")) if l != "single" else "–", x(r.get("vs_cluster")) if l == "cluster+wait1" else "–",
                  n(r["p50_ms"], 1), n(r["p99_ms"], 1), n(r["p999_ms"], 1), n(r["errors"]), n(r["status_503"]),
                  n(r["unexpected_statuses"]), n(r["generator_cores"], 2)) for l, r in s["flow"].items()]
    cost_rows = [(name.get(l, l), n(k["script_calls_per_s"]), n(k["api_cores"], 2),
                  f"{n(k['redis_cores'], 2)} ({n(k['redis_master_cores'], 2)} + {n(k['redis_replica_cores'], 2)})",
                  n(k["others_cores"], 2), n(k["redis_us_per_call"], 1), f"**{n(k['calls_per_redis_core'])}**",
                  listed(k["rounds_calls_per_redis_core"]), n(k["calls_per_master_core"]), n(k["api_us_per_2xx"]))
                 for l, k in s["cost"].items()]
    drain_rows = [("cluster, one worker" if l == "cluster" else "single Redis, one worker", d["partitions"],
                   n(d["backlog"]), f"**{n(d['events_per_s'])}**", listed(d["rounds_events_per_s"]),
                   x(d.get("vs_single")) if l != "single" else "–", d["worker_cpu_us_per_event"],
                   n(d["worker_cores"], 2), n(d["mariadb_cores"], 2), n(d["redis_cores"], 2),
                   f"{n(d.get('mean_batch'))} / {n(d.get('max_batch'))}", n(d["fill_per_s"]),
                   "ok" if d["ok"] else "**mismatch**") for l, d in s["drain"].items()]
    ratios = "; ".join(f"{what} **{x(s['flow'][l].get('vs_' + ref))}** (per round "
                       f"{listed(s['flow'][l]['vs_' + ref + '_rounds'], x)})"
                       for l, ref, what in (("cluster", "single", "(b)/(a)"), ("cluster+wait1", "single", "(c)/(a)"),
                                            ("cluster+wait1", "cluster", "(c)/(b)"))
                       if l in s["flow"] and s["flow"][l].get("vs_" + ref) is not None)
    checks = s["checks"]
    bad = [k for k in checks if not k["ok"]]
    idle = c.get("idle_cores")
    nodes = ", ".join(f"{d['port']} {d['role']}" + (f" of partitions {d['partitions']}" if "partitions" in d else "")
                      for d in c["nodes"])
    return ["## Redis Cluster vs single Redis", "",
            f"6 nodes, 3 masters + 1 replica each ({nodes}; cluster-node-timeout {c['node_timeout_ms']} ms), "
            f"OG_STREAM_PARTITIONS={p}.", "",
            *table(("variant", "2xx/s (median)", "per round", "vs (a)", "vs (b)", "p50 ms", "p99 ms", "p99.9 ms",
                    "errors", "503", "other non-2xx", "wrk cores"), flow_rows), "",
            f"Ratios: {ratios}.", "", "### Redis CPU per script call", "",
            (f"Idle: cluster {idle['masters'] + idle['replicas']:.3f} cores (masters {idle['masters']:.3f}, "
             f"replicas {idle['replicas']:.3f}), single Redis {idle['single']:.3f}." if idle else ""), "",
            *table(("variant", "calls/s", "API cores", "Redis cores (masters + replicas)", "other tenants",
                    "Redis µs/call", "calls per Redis core", "per round", "calls per master core", "API µs/2xx"),
                   cost_rows), "", "### Drain: one worker, the same backlog", "",
            *table(("store", "partitions", "backlog", "events/s (median)", "per round", "vs single",
                    "worker CPU µs/event", "worker cores", "MariaDB cores", "Redis cores",
                    "events per batch mean / max", "XADD fill/s", "og.events"), drain_rows), "",
            f"**Checks FAILED** for {len(bad)} of {len(checks)} windows: {bad}" if bad else
            f"**Checks**: {len(checks)} windows, {n(sum(k['stored'] for k in checks))} events, "
            f"{n(sum(k['status_503'] for k in checks))} 503s; the cluster stayed healthy."]


def plot(c, out):
    s, p = c["summary"], c["partitions"]
    figure, axes = plots.panels(3, 4.7, 4.6)
    for axis, part, key, rounds, title in (
            (axes[0], "flow", "ok_per_s", "rounds_ok_per_s", "2xx/s, request path"),
            (axes[1], "cost", "calls_per_redis_core", "rounds_calls_per_redis_core", "script calls/s per Redis core"),
            (axes[2], "drain", "events_per_s", "rounds_events_per_s", "drain events/s, one worker")):
        labels = list(s[part])
        plots.bars(axis, [l for l in labels], [("", [s[part][l][key] or 0 for l in labels],
                                                [[v or 0 for v in s[part][l][rounds]] for l in labels],
                                                [x(s[part][l].get("vs_single")) for l in labels])], title, title)
    return plots.save(figure, out, "cluster")
