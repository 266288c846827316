"""What `ingest rebuild` (issue 11) costs with the API serving and the worker running
(method: benchmarks/README.md)."""
import json
import logging
import signal
import time
from contextlib import closing

from benchmarks import cpu, load, range_store
from benchmarks.report import n, x
from benchmarks.summary import med, ratio
from benchmarks.targets import Sampler, Target, count_events, reset_store
from core import keys
from harness.stack import PYTHON

log = logging.getLogger("benchmarks")
BOUND_S = 600  # on one rebuild, and so on the wrk around it
SAMPLE_S = 0.1


def run(stack, plan):
    result = {"rebuilds": [_rebuild_store(stack, plan, events)
                           for events in plan.ops_rebuild_events]}
    return {**result, "summary": summarize(result)}


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
    target.accepted += sum(result["counters"].get(k, 0) for k in ("initial_ok", "followup_ok"))
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

    return {"rebuild": [rebuild(store) for store in result["rebuilds"]]}


def render(o, table):
    plan, checks = o["plan"], [store["check"] for store in o["rebuilds"]]
    rows = [(f"{store['events']:,}", w["round"], n(w["events_in_store"]),
             f"**{w['command_wall_s']:.2f}**", n(w["phases"].get("create_tables_s"), 2),
             n(w["phases"].get("range_buckets_s"), 2), w["range_bucket_days"],
             n(w["phases"].get("uuid_filter_s"), 2), f"**{w['fenced_s']:.3f}**",
             n(w["fence_seen_s"], 2), f"**{n(w['status_503'])}**", n(w["writes_per_s_before"]),
             n(w["writes_per_s_during"]), n(w["writes_per_s_after"]), x(w["after_vs_before"]),
             n(w["max_undrained"]), w["settle_s"])
            for store in o["rebuilds"] for w in store["windows"]]
    text = [
        "## Operating costs of issue 11: `ingest rebuild` under load\n",
        "With the API serving and the worker running: the flow "
        f"{plan['ops_rebuild_before_s']} s before, during and {plan['ops_rebuild_after_s']} s "
        "after `python -m ingest rebuild`; phases from its summary JSON.\n",
        *table(("store events", "round", "rows at start", "command s", "create_tables s",
                "range buckets s", "days", "uuid filter s", "fenced_s", "fence seen s", "503",
                "writes/s before", "during", "after", "after/before", "max undrained",
                "drained after s"), rows),
        "\nog.events after each store's windows: " + (
            "gained exactly what the API appended, nothing undrained."
            if all(c["ok"] for c in checks) else f"**check FAILED**: {checks}"),
    ]
    return "\n".join(text).split("\n")
