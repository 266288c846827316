"""Redis Cluster vs single Redis: the request path, Redis CPU per script call, one worker's
drain (method: benchmarks/README.md)."""
import logging
import time

from benchmarks import cpu, load, plots
from benchmarks.report import listed, n, x
from benchmarks.scenarios.drain import drain
from benchmarks.summary import add_ratios, med, median_of, ratio, statuses
from benchmarks.targets import Target, progress
from core import keys
from harness.stack import CLUSTER

log = logging.getLogger("benchmarks")

# A request whose Lua script ran (one EVALSHA each) was answered one of these: accepted,
# unknown or already-followed-up uuid. (A 503 may or may not have reached Redis.)
CALL_STATUSES = (200, 404, 409)
DRAIN_SEED = 424_242
IDLE_S = 5  # how long the idle stores' Redis CPU (cluster bus, replication, cron) is measured
ONE_DIGIT = ("redis_us_per_call", "worker_cpu_us_per_event")
NAMES = {"single": "(a) single Redis, P=1 (reference)", "cluster": "(b) cluster, P={p}, WAIT 0",
         "cluster+wait1": "(c) cluster, P={p}, WAIT 1"}


def run(stack, plan):
    began = time.monotonic()
    cluster = stack.redis_cluster()
    started_s = round(time.monotonic() - began, 2)
    p = plan.cluster_partitions
    # Which master serves each partition (its hash tag, so its slot).
    owners = [cluster.master_of_slot(keys.slot(keys.stream(i))).port for i in range(p)]
    masters = {node.port for node in cluster.masters()}
    layout = [{"port": node.port, "role": "replica"} if node.port not in masters else
              {"port": node.port, "role": "master",
               "partitions": [i for i, port in enumerate(owners) if port == node.port]}
              for node in cluster.nodes]
    log.info("cluster: %d nodes up in %.1f s: %s", len(layout), started_s, _nodes(layout))
    meter = cpu.CpuMeter({"masters": cpu.pids_of(cluster.masters()),
                          "replicas": cpu.pids_of(cluster.replicas()),
                          "single": cpu.pid_of(stack.redis())}).start()
    time.sleep(IDLE_S)
    idle = {role: core for role, core in meter.stop().items() if role != "machine"}
    log.info("idle Redis CPU over %d s: %s cores", IDLE_S, idle)
    windows, drains = [], []
    for number in range(1, plan.rounds + 1):
        for label, store, settings in (
                ("single", "main", {"OG_STREAM_PARTITIONS": 1}),
                ("cluster", CLUSTER, {"OG_STREAM_PARTITIONS": p, "OG_REDIS_WAIT_REPLICAS": 0}),
                ("cluster+wait1", CLUSTER, {"OG_STREAM_PARTITIONS": p,
                                            "OG_REDIS_WAIT_REPLICAS": 1})):
            windows.append(_window(stack, plan, label, store, settings, number))
        for label, store, partitions in (("single", "main", 1), ("cluster", CLUSTER, p)):
            # At debug the worker logs each batch's size: how many events a batch took from
            # the P streams.
            drains.append({"round": number, "label": label, "partitions": partitions,
                           **drain(stack, plan.cluster_drain_backlog, f"round {number} {label}",
                                   store, partitions, DRAIN_SEED + number,
                                   OG_LOG_LEVEL="debug")})
    result = {"partitions": p, "nodes": layout, "start_s": started_s,
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


def _medians(rows, names):
    """Medians over rounds: cores to 2 digits, ONE_DIGIT to 1, the rest to whole numbers."""
    return {name: med([row.get(name) for row in rows], 2 if name.endswith("_cores")
                      else 1 if name in ONE_DIGIT else None) for name in names}


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
        cost[label] = _medians(rounds, rounds[0])
        cost[label]["rounds_calls_per_redis_core"] = [r["calls_per_redis_core"] for r in rounds]
    drain = {label: {
        "partitions": mine[0]["partitions"], "backlog": mine[0]["backlog"],
        **_medians(mine, ("events_per_s worker_cpu_us_per_event worker_cores mariadb_cores "
                          "redis_cores fill_per_s mean_batch").split()),
        "rounds_events_per_s": [d["events_per_s"] for d in mine],
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
