"""Redis Cluster vs single Redis: the request path, Redis CPU per script call, one worker's
drain (method: benchmarks/README.md)."""
import logging
import re
import time

from benchmarks import cpu, load, plots, preload
from benchmarks.report import listed, n, x
from benchmarks.scenarios.drain import DRAIN_BOUND_S, drain_span
from benchmarks.summary import add_ratios, med, median_of, ratio, statuses
from benchmarks.targets import (Target, count_events, database_name, progress, reset_store,
                                stream_length)
from core import keys
from harness.stack import CLUSTER, PYTHON

log = logging.getLogger("benchmarks")

# A request whose Lua script ran (one EVALSHA each) was answered one of these: accepted,
# unknown or already-followed-up uuid. (A 503 may or may not have reached Redis.)
CALL_STATUSES = (200, 404, 409)
DRAIN_SEED = 424_242
FLUSHED = re.compile(r": acknowledged (\d+) entries")  # ingest/worker.py, debug
IDLE_S = 5  # how long the idle stores' Redis CPU (cluster bus, replication, cron) is measured
ONE_DIGIT = ("redis_us_per_call", "worker_cpu_us_per_event")
NAMES = {"single": "(a) single Redis, P=1 (reference)", "cluster": "(b) cluster, P={p}, WAIT 0",
         "cluster+wait1": "(c) cluster, P={p}, WAIT 1"}


def run(stack, plan):
    began = time.monotonic()
    cluster = stack.redis_cluster()
    started_s = round(time.monotonic() - began, 2)
    served = {}  # master port -> the partitions (hash tags, so slots) it serves
    for partition in range(plan.cluster_partitions):
        owner = cluster.master_of_slot(keys.slot(keys.stream(partition)))
        served.setdefault(owner.port, []).append(partition)
    masters = {node.port for node in cluster.masters()}
    layout = [{"port": node.port, "role": "master" if node.port in masters else "replica",
               **({"partitions": served.get(node.port, [])} if node.port in masters else {})}
              for node in cluster.nodes]
    log.info("cluster: %d nodes up in %.1f s: %s", len(layout), started_s, _nodes(layout))
    meter = cpu.CpuMeter({"masters": cpu.pids_of(cluster.masters()),
                          "replicas": cpu.pids_of(cluster.replicas()),
                          "single": cpu.pid_of(stack.redis())}).start()
    time.sleep(IDLE_S)
    idle = {role: core for role, core in meter.stop().items() if role != "machine"}
    log.info("idle Redis CPU over %d s: %s cores", IDLE_S, idle)
    cluster_settings = {"OG_STREAM_PARTITIONS": plan.cluster_partitions}
    windows, drains = [], []
    for number in range(1, plan.rounds + 1):
        for label, store, settings in (
                ("single", "main", {"OG_STREAM_PARTITIONS": 1}),
                ("cluster", CLUSTER, {**cluster_settings, "OG_REDIS_WAIT_REPLICAS": 0}),
                ("cluster+wait1", CLUSTER, {**cluster_settings, "OG_REDIS_WAIT_REPLICAS": 1})):
            windows.append(_window(stack, plan, label, store, settings, number))
        for label, store, partitions in (("single", "main", 1),
                                         ("cluster", CLUSTER, plan.cluster_partitions)):
            drains.append(_drain(stack, plan, label, store, partitions, number))
    result = {"partitions": plan.cluster_partitions, "nodes": layout, "start_s": started_s,
              "idle_cores": idle, "node_timeout_ms": cluster.node_timeout_ms,
              "windows": windows, "drains": drains}
    return {**result, "summary": summarize(result)}


def _nodes(layout):
    return ", ".join(f"{d['port']} {d['role']}" + (f" of partitions {d['partitions']}"
                                                   if "partitions" in d else "") for d in layout)


def _window(stack, plan, label, store, settings, number):
    with Target(stack, "redis", store=store, settings=settings, label=label) as target:
        warmup = target.measure(lambda: load.start_wrk(target.url, "conversation", plan.warmup))
        target.settle()
        flow = target.measure(lambda: load.start_wrk(target.url, "conversation", plan.duration))
        flow["settle_s"] = target.settle()
        check = target.check()
    flow.pop("backlog", None)  # worker stopped: the backlog is just what was appended
    answers = statuses([warmup["results"][0], flow["results"][0]])
    check["statuses"] = {str(k): v for k, v in sorted(answers.items())}
    check["unexpected_statuses"] = {str(k): v for k, v in answers.items()
                                    if not (200 <= k < 300 or k == 503)}
    check["status_503"] = answers.get(503, 0)
    if check["unexpected_statuses"]:
        log.warning("%s: answers other than 2xx and 503: %s", label, check["unexpected_statuses"])
        check["ok"] = False
    if store == CLUSTER:
        # Not as it was (3 masters, a replica each in sync)? Back, lest it disturb the next.
        check["cluster_problems"] = stack.redis_cluster().problems()
        if check["cluster_problems"]:
            log.warning("cluster unhealthy after a window: %s", check["cluster_problems"])
            stack.redis_cluster().ensure_healthy()
            check["ok"] = False
    progress(number, label, "conversation flow", flow)
    return {"round": number, "label": label, "store": store, "settings": settings,
            "flow": flow, "derived": derive(flow), "check": check}


def derive(window):
    """Script calls/s and what they cost Redis, from one window's wrk result and CPU."""
    result, cores = window["results"][0], window["cpu_cores"]
    calls = sum(result["statuses"].get(s, 0) for s in CALL_STATUSES) / result["seconds"]
    masters, replicas = cores["redis"], cores.get("replicas", 0.0)
    redis, ok = masters + replicas, result["ok_per_s"]
    return {
        "script_calls_per_s": round(calls, 1), "redis_cores": round(redis, 3),
        "redis_master_cores": round(masters, 3), "redis_replica_cores": round(replicas, 3),
        "redis_us_per_call": round(redis / calls * 1e6, 1) if calls else None,
        "calls_per_redis_core": round(calls / redis) if redis else None,
        "calls_per_master_core": round(calls / masters) if masters else None,
        "api_us_per_2xx": round(cores["api"] / ok * 1e6) if ok else None,
    }


def _drain(stack, plan, label, store, partitions, number):
    reset_store(stack, "redis", store)
    client = stack.redis_client(store)
    try:
        began = time.monotonic()
        added = preload.into_streams(client, plan.cluster_drain_backlog, partitions,
                                     seed=DRAIN_SEED + number)
        fill_s = time.monotonic() - began
        # debug: the worker logs each batch's size, which tells how many events a batch
        # took from P streams.
        env = stack.env("redis", redis=store, database=database_name(store),
                        OG_STREAM_PARTITIONS=partitions, OG_LOG_LEVEL="debug")
        redis = (cpu.pids_of(stack.redis_cluster().nodes) if store == CLUSTER
                 else cpu.pid_of(stack.started_redis(store)))
        meter = cpu.CpuMeter({"mariadb": cpu.pid_of(stack.started_mariadb()),
                              "redis": redis}).start()
        worker = load.LoadProcess([PYTHON, "-m", "ingest", "run", "--burst"], DRAIN_BOUND_S, env)
        code, text, worker_cpu, wall = worker.wait()
        cores = meter.stop()
        lines, seconds = drain_span(code, text, f"{label}: ingest run --burst")
        batches = [int(m.group(1)) for m in map(FLUSHED.search, lines) if m]
        stored, left = count_events(stack, store), stream_length(client, partitions)
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
        "batches": len(batches),
        "mean_batch": round(sum(batches) / len(batches)) if batches else None,
        "max_batch": max(batches, default=None),
        "stored": stored, "stream_length_after": left, "ok": stored == added and left == 0,
    }
    log.info("round %d drain %-7s %d events over %d stream(s): %d events/s; stored %s", number,
             label, added, partitions, result["events_per_s"],
             "ok" if result["ok"] else f"MISMATCH {stored} (left {left})")
    return result


def _medians(rows, names):
    """Medians over rounds: cores to 2 digits, ONE_DIGIT to 1, the rest to whole numbers."""
    return {name: med([row.get(name) for row in rows], 2 if name.endswith("_cores")
                      else 1 if name in ONE_DIGIT else None) for name in names.split()}


def _by_label(items):
    return {label: [i for i in items if i["label"] == label]
            for label in dict.fromkeys(i["label"] for i in items)}


def summarize(result):
    windows, drains = _by_label(result["windows"]), _by_label(result["drains"])
    flow = add_ratios({label: median_of([w["flow"]["results"][0] for w in mine])
                       for label, mine in windows.items()}, references=("single", "cluster"))
    cost = {}
    for label, mine in windows.items():
        row = flow[label]
        row["status_503"] = sum(w["check"]["status_503"] for w in mine)
        row["unexpected_statuses"] = sum(sum(w["check"]["unexpected_statuses"].values())
                                         for w in mine)
        row["socket_errors"] = sum(v for w in mine for k, v in
                                   w["flow"]["results"][0]["socket_errors"].items()
                                   if k != "status")
        rounds = [{**{f"{role}_cores": w["flow"]["cpu_cores"][role]
                      for role in ("api", "others", "machine")}, **w["derived"]} for w in mine]
        cost[label] = _medians(rounds, "api_cores redis_cores redis_master_cores "
                               "redis_replica_cores others_cores machine_cores script_calls_per_s "
                               "redis_us_per_call calls_per_redis_core calls_per_master_core "
                               "api_us_per_2xx")
        cost[label]["rounds_calls_per_redis_core"] = [r["calls_per_redis_core"] for r in rounds]
    drain = {label: {
        "partitions": mine[0]["partitions"], "backlog": mine[0]["backlog"],
        **_medians(mine, "events_per_s"), "rounds_events_per_s": [d["events_per_s"] for d in mine],
        **_medians(mine, "worker_cpu_us_per_event worker_cores mariadb_cores redis_cores "
                         "fill_per_s mean_batch"),
        "max_batch": max((d.get("max_batch") or 0 for d in mine), default=None),
        "ok": all(d["ok"] for d in mine)} for label, mine in drains.items()}
    single, cluster = drain["single"], drain["cluster"]
    cluster["vs_single"] = ratio(cluster["events_per_s"], single["events_per_s"])
    cluster["vs_single_rounds"] = [ratio(c, s) for c, s in zip(
        cluster["rounds_events_per_s"], single["rounds_events_per_s"])]
    return {"flow": flow, "cost": cost, "drain": drain,
            "checks": [dict(w["check"], label=w["label"], round=w["round"])
                       for w in result["windows"]]}


def render(c, table):
    s, p = c["summary"], c["partitions"]
    name = {label: what.format(p=p) for label, what in NAMES.items()}
    flow_rows = [(name[l], n(r["ok_per_s"]), listed(r["rounds_ok_per_s"]),
                  x(r.get("vs_single")) if l != "single" else "–",
                  x(r.get("vs_cluster")) if l == "cluster+wait1" else "–",
                  *(n(r[k], 1) for k in ("p50_ms", "p99_ms", "p999_ms")),
                  *(n(r[k]) for k in ("errors", "status_503", "unexpected_statuses")),
                  n(r["generator_cores"], 2)) for l, r in s["flow"].items()]
    cost_rows = [(name[l], n(k["script_calls_per_s"]), n(k["api_cores"], 2),
                  f"{n(k['redis_cores'], 2)} ({n(k['redis_master_cores'], 2)} + "
                  f"{n(k['redis_replica_cores'], 2)})", n(k["others_cores"], 2),
                  n(k["redis_us_per_call"], 1), f"**{n(k['calls_per_redis_core'])}**",
                  listed(k["rounds_calls_per_redis_core"]), n(k["calls_per_master_core"]),
                  n(k["api_us_per_2xx"])) for l, k in s["cost"].items()]
    drain_rows = [(("cluster" if l == "cluster" else "single Redis") + ", one worker",
                   d["partitions"], n(d["backlog"]), f"**{n(d['events_per_s'])}**",
                   listed(d["rounds_events_per_s"]),
                   x(d.get("vs_single")) if l != "single" else "–", d["worker_cpu_us_per_event"],
                   *(n(d[k], 2) for k in ("worker_cores", "mariadb_cores", "redis_cores")),
                   f"{n(d['mean_batch'])} / {n(d['max_batch'])}", n(d["fill_per_s"]),
                   "ok" if d["ok"] else "**mismatch**") for l, d in s["drain"].items()]
    ratios = "; ".join(f"{what} **{x(s['flow'][l]['vs_' + ref])}** (per round "
                       f"{listed(s['flow'][l]['vs_' + ref + '_rounds'], x)})"
                       for l, ref, what in (("cluster", "single", "(b)/(a)"),
                                            ("cluster+wait1", "single", "(c)/(a)"),
                                            ("cluster+wait1", "cluster", "(c)/(b)"))
                       if s["flow"][l]["vs_" + ref] is not None)
    checks, idle = s["checks"], c["idle_cores"]
    bad = [k for k in checks if not k["ok"]]
    return ["## Redis Cluster vs single Redis", "",
            f"6 nodes, 3 masters + 1 replica each ({_nodes(c['nodes'])}; cluster-node-timeout "
            f"{c['node_timeout_ms']} ms), OG_STREAM_PARTITIONS={p}.", "",
            *table(("variant", "2xx/s (median)", "per round", "vs (a)", "vs (b)", "p50 ms",
                    "p99 ms", "p99.9 ms", "errors", "503", "other non-2xx", "wrk cores"),
                   flow_rows), "",
            f"Ratios: {ratios}.", "", "### Redis CPU per script call", "",
            f"Idle: cluster {idle['masters'] + idle['replicas']:.3f} cores (masters "
            f"{idle['masters']:.3f}, replicas {idle['replicas']:.3f}), single Redis "
            f"{idle['single']:.3f}.", "",
            *table(("variant", "calls/s", "API cores", "Redis cores (masters + replicas)",
                    "other tenants", "Redis µs/call", "calls per Redis core", "per round",
                    "calls per master core", "API µs/2xx"), cost_rows), "",
            "### Drain: one worker, the same backlog", "",
            *table(("store", "partitions", "backlog", "events/s (median)", "per round",
                    "vs single", "worker CPU µs/event", "worker cores", "MariaDB cores",
                    "Redis cores", "events per batch mean / max", "XADD fill/s", "og.events"),
                   drain_rows), "",
            f"**Checks FAILED** for {len(bad)} of {len(checks)} windows: {bad}" if bad else
            f"**Checks**: {len(checks)} windows, {n(sum(k['stored'] for k in checks))} events, "
            f"{n(sum(k['status_503'] for k in checks))} 503s; the cluster stayed healthy."]


def plot(c, out):
    s = c["summary"]
    figure, axes = plots.panels(3, 4.7, 4.6)
    for axis, part, key, title in zip(axes, ("flow", "cost", "drain"),
                                      ("ok_per_s", "calls_per_redis_core", "events_per_s"),
                                      ("2xx/s, request path", "script calls/s per Redis core",
                                       "drain events/s, one worker")):
        rows = s[part].values()
        plots.bars(axis, list(s[part]), [("", [r[key] or 0 for r in rows],
                                          [[v or 0 for v in r["rounds_" + key]] for r in rows],
                                          [x(r.get("vs_single")) for r in rows])], title, title)
    return plots.save(figure, out, "cluster")
