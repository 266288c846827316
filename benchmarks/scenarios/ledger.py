"""The cost ledger of one request and of one drained event (method: benchmarks/README.md)."""
import contextlib
import json
import signal
import statistics
import time
import uuid as uuidlib

from benchmarks import load
from benchmarks.cpu import children, cpu_seconds
from harness.servers import GunicornServer, MariaDBServer


class StepApi(GunicornServer):
    """gunicorn.conf.py serving another WSGI app (a step of the ledger)."""

    def __init__(self, data_dir, env, app):
        super().__init__(data_dir, env)
        self.app = app

    def command(self):
        return [*super().command(), *([self.app] if self.app else [])]


class CountingMariaDB(MariaDBServer):
    """MariaDB as the benchmark runs it, plus performance_schema: its time by statement."""

    def command(self):
        return [*super().command(), "--performance-schema=ON"]

    def sql(self, database, statement):
        connection = self.connect(database=database)
        try:
            with connection.cursor() as cursor:
                cursor.execute(statement)
                return cursor.fetchall()
        finally:
            connection.close()

ROWS = (
    # (label, backend, app served, extra settings)
    ("null: the Flask app alone", "null", "server.app:app", {}),
    ("null: through server/wsgi.py (the baseline)", "null", None, {}),
    ("+ one gevent yield per write", "null", "benchmarks.ledger_app:application",
     {"OG_LEDGER_STEP": "yield"}),
    ("+ one no-op script per write through the store client", "null",
     "benchmarks.ledger_app:application", {"OG_LEDGER_STEP": "noop_script"}),
    ("redis, uuid filter off", "redis", None, {"OG_UUID_FILTER_MB": "0"}),
    ("redis, every feature at its default", "redis", None, {}),
)
BASELINE = 1
DRAINS = (("live rate, uuid index on", "live", True), ("live rate, uuid index dropped", "live", False),
          ("sparse: each event its own second", "sparse", True))
STATEMENTS = (("INSERT IGNORE INTO EVENTS", "insert into og.events"),
              ("INSERT INTO RANGE_BUCKETS", "range bucket upsert"),
              ("COMMIT", "commit"))
"""performance_schema digests (upper-cased, backticks dropped) -> the ledger's names."""
BATCH = 1000


def run(stack, plan):
    from types import SimpleNamespace
    # Its sizes follow the run's: windows half throughput's, the drain sweep's backlog.
    plan = SimpleNamespace(rounds=plan.rounds, ledger_seconds=max(3, plan.duration // 2),
                           ledger_drain_events=plan.drain_backlog)
    api = _api_rows(stack, plan)
    redis = _redis_commands(stack, plan)
    database = CountingMariaDB(stack.dir / "ledger-mariadb").start()
    try:
        drains = [_drain(stack, plan, database, label, shape, indexed)
                  for label, shape, indexed in DRAINS]
    finally:
        database.stop()
    return {"api": api, "redis_commands": redis, "drains": drains}


# --- one request: API and Redis CPU per 2xx, each step side by side -----------------------

def _api_rows(stack, plan):
    redis_server = stack.redis("ledger")
    samples = {label: [] for label, *_ in ROWS}
    for number in range(plan.rounds):
        for label, backend, app, extra in ROWS:
            redis_server.client().flushall()
            env = stack.env(backend, redis="ledger", database="og_ledger", **extra)
            if backend == "null" and extra:
                env["REDIS_URL"] = redis_server.url
            server = StepApi(stack.dir / f"ledger-api-{number}-{len(samples[label])}-"
                                        f"{[r[0] for r in ROWS].index(label)}", env, app)
            server.start()
            try:
                load.wrk(server.url, "conversation", 2)  # warm up: connections, scripts
                api_before = _cpu([server.process.pid, *children(server.process.pid)])
                redis_before = cpu_seconds(redis_server.process.pid)
                result = load.wrk(server.url, "conversation", plan.ledger_seconds)
                api_used = _cpu([server.process.pid, *children(server.process.pid)]) - api_before
                redis_used = cpu_seconds(redis_server.process.pid) - redis_before
            finally:
                server.stop()
            ok = max(1, result["ok"])
            samples[label].append({"ok_per_s": result["ok_per_s"], "errors": result["errors"],
                                   "p99_ms": result["p99_ms"], "api_us": api_used / ok * 1e6,
                                   "redis_us": redis_used / ok * 1e6})
    rows = []
    for label, values in samples.items():
        row = {"step": label, **{key: round(statistics.median(v[key] for v in values), 1)
                                for key in ("ok_per_s", "p99_ms", "api_us", "redis_us")},
               "errors": sum(v["errors"] for v in values),
               "rounds_ok_per_s": [v["ok_per_s"] for v in values]}
        row["total_us"] = round(row["api_us"] + row["redis_us"], 1)
        rows.append(row)
    base = rows[BASELINE]
    for row in rows:
        row["vs_baseline"] = round(row["ok_per_s"] / base["ok_per_s"], 2)
        row["cost_ratio"] = round(base["total_us"] / row["total_us"], 2)
        row["added_us"] = round(row["total_us"] - base["total_us"], 1)
    return rows


def _cpu(pids):
    return sum(cpu_seconds(pid) for pid in pids)


def _redis_commands(stack, plan):
    """Redis's own account (INFO commandstats) of the conversation flow on the product:
    each command the scripts call, per request."""
    server = stack.redis("ledger")
    client = server.client()
    client.flushall()
    env = stack.env("redis", redis="ledger", database="og_ledger")
    with stack.api("ledger-commands", env) as api:
        load.wrk(api.url, "conversation", 2)
        client.config_resetstat()
        result = load.wrk(api.url, "conversation", plan.ledger_seconds)
        stats = client.info("commandstats")
    requests = max(1, result["requests"])
    rows = []
    for name, figures in stats.items():
        command = name.removeprefix("cmdstat_")
        if figures["calls"] < requests / 100:
            continue  # the odd GET/HGETALL of the model's refresh
        rows.append({"command": command, "calls_per_request": round(figures["calls"] / requests, 2),
                     "us_per_call": round(figures["usec"] / figures["calls"], 2),
                     "us_per_request": round(figures["usec"] / requests, 2)})
    rows.sort(key=lambda row: -row["us_per_request"])
    scripts = sum(r["us_per_request"] for r in rows if r["command"] in ("evalsha", "eval"))
    inner = sum(r["us_per_request"] for r in rows if r["command"] not in ("evalsha", "eval"))
    return {"requests": requests, "commands": rows,
            "script_overhead_us_per_request": round(scripts - inner, 2)}


# --- one drained event: worker and MariaDB, by statement ----------------------------------

def _drain(stack, plan, database, label, shape, indexed):
    """The worker starts (and makes its tables), is paused while the backlog is appended,
    and drains it; without the uuid index, the index is dropped from outside first."""
    from core import keys
    database.sql(None, "DROP DATABASE IF EXISTS og_ledger")
    database.sql(None, "CREATE DATABASE og_ledger")
    redis_server = stack.redis("ledger")
    client = redis_server.client()
    client.flushall()
    env = stack.env("redis", redis="ledger",
                    DATABASE_URL=f"mysql+pymysql://root@127.0.0.1:{database.port}/og_ledger")
    with stack.ingest_worker(env, label=f"ledger-{shape}-{indexed}") as worker:
        _wait(lambda: any(row[2] == "events_by_uuid_key" for row in
                          _rows(database, "SHOW INDEX FROM events")), "the worker's tables")
        if not indexed:  # dropped from outside, after the worker's start-up migration
            database.sql("og_ledger", "ALTER TABLE events DROP INDEX events_by_uuid_key")
        worker.process.send_signal(signal.SIGSTOP)
        try:
            _fill(client, plan.ledger_drain_events, shape)
            database.sql("performance_schema", "TRUNCATE TABLE events_statements_summary_by_digest")
            pids = [worker.process.pid, database.process.pid, redis_server.process.pid]
            before = [cpu_seconds(pid) for pid in pids]
            started = time.monotonic()
        finally:
            worker.process.send_signal(signal.SIGCONT)
        _wait(lambda: int(client.get(keys.undrained(0)) or 0) == 0, "the drain",
              bound_s=600, pause_s=0.02)
        wall = time.monotonic() - started
        used = [cpu_seconds(pid) - b for pid, b in zip(pids, before)]
        digests = database.sql("performance_schema",
                               "SELECT DIGEST_TEXT, COUNT_STAR, SUM_TIMER_WAIT "
                               "FROM events_statements_summary_by_digest")
    events = plan.ledger_drain_events
    statements = {}
    for text, count, picoseconds in digests:
        for prefix, name in STATEMENTS:
            if (text or "").upper().replace("`", "").startswith(prefix):
                statements[name] = round(statements.get(name, 0) + picoseconds / 1e6 / events, 2)
    stored = database.sql("og_ledger", "SELECT COUNT(*) FROM events")[0][0]
    return {"drain": label, "events": events, "stored": stored, "seconds": round(wall, 2),
            "events_per_s": round(events / wall), "worker_us": round(used[0] / events * 1e6, 2),
            "mariadb_us": round(used[1] / events * 1e6, 2),
            "redis_us": round(used[2] / events * 1e6, 2), "statements_us": statements}


def _fill(client, events, shape):
    """`events` stream entries as the API appends them (half initials, half followups):
    at the live rate (initial.lua's own clock) or sparse (one second apart, appended as
    entries directly, as a test does)."""
    from core import keys
    from core.store.scripts import ALL as SCRIPTS
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
        if at % BATCH == 0:
            pipe.execute()
    pipe.execute()


def _rows(database, statement):
    try:
        return database.sql("og_ledger", statement)
    except Exception:  # noqa: BLE001 - not made yet
        return []


def _wait(predicate, what, bound_s=60, pause_s=0.1):
    deadline = time.monotonic() + bound_s
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"ledger: {what} did not come within {bound_s} s")
        time.sleep(pause_s)


def render(result, table):
    """The report's section: one table per part."""
    lines = ["## Cost ledger: where one request's and one event's CPU goes", ""]
    lines += table(["step", "2xx/s (median)", "vs baseline", "API µs/2xx", "Redis µs/2xx",
                    "total µs/2xx", "added µs", "cost ratio", "p99 ms", "errors"],
                   [[r["step"], f"{r['ok_per_s']:,.0f}", f"{r['vs_baseline']:.2f}×", r["api_us"],
                     r["redis_us"], r["total_us"], r["added_us"], f"{r['cost_ratio']:.2f}×",
                     r["p99_ms"], r["errors"]] for r in result["api"]])
    commands = result["redis_commands"]
    lines += ["", "Inside Redis, the conversation flow on the product (INFO commandstats; "
              f"{commands['requests']:,} requests; script overhead, the EVALSHA time not "
              f"spent in the commands it calls: {commands['script_overhead_us_per_request']} "
              "µs per request):", ""]
    lines += table(["command", "calls/request", "µs/call", "µs/request"],
                   [[r["command"], r["calls_per_request"], r["us_per_call"], r["us_per_request"]]
                    for r in commands["commands"]])
    lines += ["", "nginx's share of a request under `make run` is in the Proxy section (nginx CPU "
              "per request, and redis vs null both through the same nginx)."]
    lines += ["", "One drained event (`python -m ingest run`, batches of 1,000; MariaDB time by "
              "statement from performance_schema):", ""]
    names = [name for _, name in STATEMENTS]
    lines += table(["drain", "events", "events/s", "worker µs/event", "MariaDB µs/event",
                    "Redis µs/event", *[f"{n} µs/event" for n in names]],
                   [[d["drain"], f"{d['events']:,}", f"{d['events_per_s']:,}", d["worker_us"],
                     d["mariadb_us"], d["redis_us"], *[d["statements_us"].get(n, "") for n in names]]
                    for d in result["drains"]])
    return lines
