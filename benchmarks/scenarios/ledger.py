"""The cost ledger: where one request's CPU goes, step by step from the null app to the
product, and one drained event's, by process and by MariaDB statement."""
import signal
import time
import uuid as uuidlib

from benchmarks import load
from benchmarks.cpu import children, cpu_seconds
from benchmarks.targets import sql, wait_for
from benchmarks.summary import med
from core import keys
from core.store.scripts import ALL as SCRIPTS
from harness.servers import GunicornServer, MariaDBServer

STEP = "benchmarks.ledger_app:application"
ROWS = (  # (label, backend, the app gunicorn serves if not server/wsgi.py's, settings)
    ("null: the Flask app alone", "null", "server.app:app", {}),
    ("null: through server/wsgi.py (the baseline)", "null", None, {}),
    ("+ one gevent yield per write", "null", STEP, {"OG_LEDGER_STEP": "yield"}),
    ("+ one no-op script per write through the store client", "null", STEP,
     {"OG_LEDGER_STEP": "noop_script"}),
    ("redis, uuid filter off", "redis", None, {"OG_UUID_FILTER_MB": "0"}),
    ("redis, every feature at its default", "redis", None, {}),
)
BASELINE = 1
DRAINS = (("live rate, uuid index on", "live", True),
          ("live rate, uuid index dropped", "live", False),
          ("sparse: each event its own second", "sparse", True))
STATEMENTS = (("INSERT IGNORE INTO EVENTS", "insert into og.events"),
              ("INSERT INTO RANGE_BUCKETS", "range bucket upsert"),
              ("COMMIT", "commit"))  # performance_schema digests, upper-cased, no backticks
DIGESTS = "events_statements_summary_by_digest"


class StepApi(GunicornServer):
    def __init__(self, data_dir, env, app):
        super().__init__(data_dir, env)
        self.app = app

    def command(self):
        return [*super().command(), *([self.app] if self.app else [])]


class CountingMariaDB(MariaDBServer):
    """MariaDB as the benchmark runs it, plus performance_schema: its time by statement."""

    def command(self):
        return [*super().command(), "--performance-schema=ON"]


def run(stack, plan):
    seconds = max(3, plan.duration // 2)  # windows half throughput's
    api, commands = _api_rows(stack, plan.rounds, seconds)
    database = CountingMariaDB(stack.dir / "ledger-mariadb").start()
    try:
        drains = [_drain(stack, plan.drain_backlog, database, *drain) for drain in DRAINS]
    finally:
        database.stop()
    return {"api": api, "redis_commands": commands, "drains": drains}


def _api_rows(stack, rounds, seconds):
    """API and Redis CPU per 2xx of each step, the steps interleaved in each round; and Redis's
    own account (INFO commandstats) of the product's window in the last round."""
    redis = stack.redis("ledger")
    client = redis.client()
    samples = {label: [] for label, *_ in ROWS}
    for number in range(rounds):
        for index, (label, backend, app, settings) in enumerate(ROWS):
            client.flushall()
            env = stack.env(backend, redis="ledger", database="og_ledger", REDIS_URL=redis.url,
                            **settings)
            api = StepApi(stack.dir / f"ledger-api-{number}-{index}", env, app).start()
            try:
                used = lambda: (sum(map(cpu_seconds, [api.pid, *children(api.pid)])),
                                cpu_seconds(redis.pid))
                load.wrk(api.url, "conversation", 2)  # warm up: connections, scripts
                client.config_resetstat()
                before = used()
                result = load.wrk(api.url, "conversation", seconds)
                api_s, redis_s = (b - a for a, b in zip(before, used()))
                stats = client.info("commandstats")
            finally:
                api.stop()
            ok = max(1, result["ok"])
            samples[label].append({"ok_per_s": result["ok_per_s"], "errors": result["errors"],
                                   "p99_ms": result["p99_ms"], "api_us": api_s / ok * 1e6,
                                   "redis_us": redis_s / ok * 1e6})
    rows = []
    for label, values in samples.items():
        row = {"step": label, **{key: med([v[key] for v in values])
                                for key in ("ok_per_s", "p99_ms", "api_us", "redis_us")},
               "errors": sum(v["errors"] for v in values),
               "rounds_ok_per_s": [v["ok_per_s"] for v in values]}
        rows.append({**row, "total_us": round(row["api_us"] + row["redis_us"], 1)})
    base = rows[BASELINE]
    for row in rows:
        row["vs_baseline"] = round(row["ok_per_s"] / base["ok_per_s"], 2)
        row["cost_ratio"] = round(base["total_us"] / row["total_us"], 2)
        row["added_us"] = round(row["total_us"] - base["total_us"], 1)
    requests = max(1, result["requests"])  # of the last window: the product's, last round
    commands = sorted(({"command": name.removeprefix("cmdstat_"),
                        "calls_per_request": round(figures["calls"] / requests, 2),
                        "us_per_call": round(figures["usec"] / figures["calls"], 2),
                        "us_per_request": round(figures["usec"] / requests, 2)}
                       for name, figures in stats.items()
                       if figures["calls"] >= requests / 100),  # not the model's odd refresh
                      key=lambda row: -row["us_per_request"])
    scripts = sum(r["us_per_request"] for r in commands if r["command"] in ("evalsha", "eval"))
    inner = sum(r["us_per_request"] for r in commands if r["command"] not in ("evalsha", "eval"))
    return rows, {"requests": requests, "commands": commands,
                  "script_overhead_us_per_request": round(scripts - inner, 2)}


def _drain(stack, events, database, label, shape, indexed):
    """Worker, MariaDB and Redis CPU per event: the worker starts (and makes its tables), is
    paused while the backlog is appended, and drains it; without the uuid index, the index
    is dropped from outside first."""
    query = lambda db, statement: sql(database, db, statement)[1]
    query(None, "DROP DATABASE IF EXISTS og_ledger")
    query(None, "CREATE DATABASE og_ledger")
    redis = stack.redis("ledger")
    client = redis.client()
    client.flushall()
    env = stack.env("redis", redis="ledger",
                    DATABASE_URL=f"mysql+pymysql://root@127.0.0.1:{database.port}/og_ledger")
    with stack.ingest_worker(env, label=f"ledger-{shape}-{indexed}") as worker:
        # Its consumer group is made after its start-up migration (the tables).
        wait_for(lambda: client.exists(keys.stream(0)) and client.xinfo_groups(keys.stream(0)),
                 "ledger: the worker's tables", bound_s=60, pause_s=0.1)
        if not indexed:
            query("og_ledger", "ALTER TABLE events DROP INDEX events_by_uuid_key")
        worker.process.send_signal(signal.SIGSTOP)
        try:
            _fill(client, events, shape)
            query("performance_schema", f"TRUNCATE TABLE {DIGESTS}")
            pids = [worker.pid, database.pid, redis.pid]
            before = [cpu_seconds(pid) for pid in pids]
            started = time.monotonic()
        finally:
            worker.process.send_signal(signal.SIGCONT)
        wait_for(lambda: int(client.get(keys.undrained(0)) or 0) == 0, "ledger: the drain",
                 pause_s=0.02)
        wall = time.monotonic() - started
        used = [(cpu_seconds(pid) - b) / events * 1e6 for pid, b in zip(pids, before)]
        digests = query("performance_schema",
                        f"SELECT DIGEST_TEXT, COUNT_STAR, SUM_TIMER_WAIT FROM {DIGESTS}")
    statements = {}
    for text, _count, picoseconds in digests:
        for prefix, name in STATEMENTS:
            if (text or "").upper().replace("`", "").startswith(prefix):
                statements[name] = round(statements.get(name, 0) + picoseconds / 1e6 / events, 2)
    return {"drain": label, "events": events,
            "stored": query("og_ledger", "SELECT COUNT(*) FROM events")[0][0],
            "seconds": round(wall, 2), "events_per_s": round(events / wall),
            **{key: round(us, 2) for key, us in zip(("worker_us", "mariadb_us", "redis_us"), used)},
            "statements_us": statements}


def _fill(client, events, shape):
    """`events` stream entries as the API appends them (half initials, half followups): at
    the live rate (initial.lua's own clock) or sparse (one second apart, XADDed directly)."""
    client.set(keys.layout(0), 1)
    pipe = client.pipeline(transaction=False)
    start = int(time.time()) - events  # sparse: one second each, ending now
    for at in range(0, events, 2):
        uuid = str(uuidlib.uuid4())
        symbol = "abcdefghijklmnopqrstuvwxyz"[at % 26]
        if shape == "live":
            pipe.execute_command(*SCRIPTS["initial"].command(
                keys.initial_keys(0, uuid), (uuid, symbol, "1", 3600, 10**9, 0, "0", 1)))
            pipe.execute_command(*SCRIPTS["followup"].command(
                keys.followup_keys(0, uuid), (uuid, 10**9, 3600, 1)))
        else:
            ts = f"{start + at}000000"
            for kind, when in (("initial", ts), ("followup", f"{start + at + 1}000000")):
                pipe.xadd(keys.stream(0), {"kind": kind, "uuid": uuid, "symbol": symbol,
                                           "guess": "1", "ts": when, "cts": ts})
            pipe.incrby(keys.undrained(0), 2)
        if at % 1000 == 0:  # a pipeline per 1,000 entries
            pipe.execute()
    pipe.execute()


def render(result, table):
    commands, names = result["redis_commands"], [name for _, name in STATEMENTS]
    return ["## Cost ledger: where one request's and one event's CPU goes", "",
            *table(["step", "2xx/s (median)", "vs baseline", "API µs/2xx", "Redis µs/2xx",
                    "total µs/2xx", "added µs", "cost ratio", "p99 ms", "errors"],
                   [[r["step"], f"{r['ok_per_s']:,.0f}", f"{r['vs_baseline']:.2f}×", r["api_us"],
                     r["redis_us"], r["total_us"], r["added_us"], f"{r['cost_ratio']:.2f}×",
                     r["p99_ms"], r["errors"]] for r in result["api"]]),
            "", "Inside Redis, the conversation flow on the product (INFO commandstats; "
            f"{commands['requests']:,} requests; script overhead, the EVALSHA time not spent in "
            f"the commands it calls: {commands['script_overhead_us_per_request']} µs per "
            "request):", "",
            *table(["command", "calls/request", "µs/call", "µs/request"],
                   [[r["command"], r["calls_per_request"], r["us_per_call"], r["us_per_request"]]
                    for r in commands["commands"]]),
            "", "nginx's share of a request under `make run` is in the Proxy section (nginx CPU "
            "per request, and redis vs null both through the same nginx).",
            "", "One drained event (`python -m ingest run`, batches of 1,000; MariaDB time by "
            "statement from performance_schema):", "",
            *table(["drain", "events", "events/s", "worker µs/event", "MariaDB µs/event",
                    "Redis µs/event", *[f"{name} µs/event" for name in names]],
                   [[d["drain"], f"{d['events']:,}", f"{d['events_per_s']:,}", d["worker_us"],
                     d["mariadb_us"], d["redis_us"], *[d["statements_us"].get(name, "")
                                                      for name in names]]
                    for d in result["drains"]])]
