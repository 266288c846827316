"""A backend under test for one round: its store reset, its API up (direct or behind nginx),
its windows measured, the backlog drained and checked."""
import contextlib
import logging
import shutil
import threading
import time

import pymysql
import redis as redislib
import sqlalchemy

from benchmarks import cpu, load, preload
from benchmarks.report import n
from harness.stack import CLUSTER
from core import event_store, keys, pipeline
from core.store.gateway import Store
from server.initdb import init_db

log = logging.getLogger("benchmarks")

DRAIN_WAIT_S = 300  # bound on waiting for the running worker to catch up after a window


def wait_for(predicate, what, bound_s=600, pause_s=0.05):
    deadline = time.monotonic() + bound_s
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not come within {bound_s} s")
        time.sleep(pause_s)


def sql(server, database, statement):
    """(seconds the statement took, its rows)."""
    with contextlib.closing(server.connect(database=database)) as connection, \
            connection.cursor() as cursor:
        began = time.monotonic()
        cursor.execute(statement)
        return time.monotonic() - began, cursor.fetchall()


class Sampler(threading.Thread):
    """Appends sample(seconds since start) to .samples every interval (None: none), in a thread."""

    interval = 0.5

    def __init__(self):
        super().__init__(name=type(self).__name__, daemon=True)
        self.samples, self.stopped = [], threading.Event()

    def __enter__(self):
        self.started = time.monotonic()
        self.start()
        return self

    def __exit__(self, *_):
        self.stopped.set()
        self.join()

    def now(self):
        return time.monotonic() - self.started

    def run(self):
        while True:
            if (sample := self.sample(self.now())) is not None:
                self.samples.append(sample)
            if self.stopped.wait(self.interval):
                return


class BacklogSampler(Sampler):
    """{t, length, lag, pending}, summed over the partitions' streams."""

    def __init__(self, redis_url, partitions=1, interval=Sampler.interval):
        super().__init__()
        self.store = Store.connect(redis_url, partitions, timeout=10)
        self.interval = interval

    def sample(self, at):
        report = pipeline.collect(self.store)
        return {"t": round(at, 3),
                **{key: sum(p[key] for p in report) for key in ("length", "lag", "pending")}}


def _undrained(sample):
    return sample["lag"] + sample["pending"]


def stream_length(redis_client, partitions=1):
    return sum(redis_client.xlen(keys.stream(p)) for p in range(partitions))


def _entries_added(redis_client, partitions):
    """Entries ever appended to the partitions' streams (0 for a stream not there)."""
    total = 0
    for partition in range(partitions):
        with contextlib.suppress(redislib.ResponseError):  # no such key
            total += redis_client.xinfo_stream(keys.stream(partition))["entries-added"]
    return total


def database_name(store):
    return "og" if store == "main" else f"og_{store}"


def count_events(stack, store="main"):
    try:
        return sql(stack.mariadb(), database_name(store), "SELECT COUNT(*) FROM events")[1][0][0]
    except pymysql.err.ProgrammingError:  # no table yet
        return 0


def reset_store(stack, backend, store="main"):
    """Empty the backend's store: a new SQLite file, or FLUSHALL plus an empty og.events."""
    if backend == "sqlite":
        path = stack.sqlite_path(store)
        shutil.rmtree(path.parent, ignore_errors=True)
        init_db(str(path))
    elif backend == "redis":
        if store == CLUSTER:
            stack.redis_cluster().flushall()  # every master, each WAITing for its replica
        else:
            with contextlib.closing(stack.redis(store).client()) as client:
                client.flushall()
        engine = sqlalchemy.create_engine(stack.database_url(database_name(store)))
        with engine.begin() as connection:
            # The buckets and their readiness row too: left behind, they would keep
            # answering /dashboard/range with the previous store's counts.
            connection.exec_driver_sql("DROP TABLE IF EXISTS events, range_buckets, migrations")
        event_store.create_tables(engine)
        engine.dispose()


def preload_store(stack, backend, events, store="main"):
    """Store `events` synthetic events, not through the API; redis: the rebuild's output."""
    if backend == "sqlite":
        preload.into_sqlite(str(stack.sqlite_path(store)), events)
    elif backend == "redis":
        with contextlib.closing(stack.mariadb().connect(database=database_name(store))) as db:
            preload.into_events(db, events)
        env = stack.env("redis", redis=store, database=database_name(store))
        return stack.ingest(env, "rebuild").strip()


class Target:
    """`settings`: product variables for the API and the worker (e.g. OG_STREAM_PARTITIONS);
    `proxy`: the API behind nginx (gunicorn on a unix socket), as make run serves it."""

    def __init__(self, stack, backend, worker=False, store="main", reset=True, preload=0,
                 settings=None, label=None, proxy=False):
        self.stack, self.backend, self.store, self.proxy = stack, backend, store, proxy
        self.worker_running, self.reset, self.preload = worker, reset, preload
        self.settings = dict(settings or {})
        self.partitions = int(self.settings.get("OG_STREAM_PARTITIONS", 1))
        self.label = label or (backend + ("+ingest" if worker else "")
                               + ("" if store == "main" else f"@{store}"))
        self.accepted = 0
        self.worker = self.redis = None

    def __enter__(self):
        if self.reset:
            reset_store(self.stack, self.backend, self.store)
        if self.preload:
            preload_store(self.stack, self.backend, self.preload, self.store)
        self.env = self.stack.env(self.backend, redis=self.store,
                                  database=database_name(self.store), sqlite=self.store,
                                  **self.settings)
        with contextlib.ExitStack() as started:  # all stopped again if one fails to start
            if self.backend == "redis":
                self.events_before = count_events(self.stack, self.store)
                self.redis = started.enter_context(
                    contextlib.closing(self.stack.redis_client(self.store)))
                self.added_before = _entries_added(self.redis, self.partitions)
            serve = self.stack.proxied_api if self.proxy else self.stack.api
            self.api = started.enter_context(serve(self.label.replace("@", "-"), self.env))
            self.url = self.api.url
            if self.worker_running:
                self.worker = started.enter_context(self.stack.ingest_worker(self.env, self.label))
            self._exit = started.pop_all()
        return self

    def __exit__(self, *_):
        self._exit.close()

    def _backlog(self):
        return BacklogSampler(self.stack.redis_url(self.store), self.partitions)

    def cpu_roles(self):
        roles = {"api": cpu.api_pids(self.api.gunicorn if self.proxy else self.api),
                 "mariadb": cpu.pid_of(self.stack.started_mariadb()),
                 "ingest": cpu.pid_of(self.worker)}
        if self.proxy:
            roles["nginx"] = cpu.api_pids(self.api.nginx)  # its master and workers
        if self.store == CLUSTER:
            # Roles as the nodes say now (a failover would swap them; the window's check
            # says whether the cluster stayed healthy).
            cluster = self.stack.redis_cluster()
            roles["redis"] = cpu.pids_of(cluster.masters())
            roles["replicas"] = cpu.pids_of(cluster.replicas())
        else:
            roles["redis"] = cpu.pid_of(self.stack.started_redis(self.store))
        return roles

    def measure(self, *starters, during=None):
        """Run the loads together (each a callable starting a LoadProcess), and `during()`
        meanwhile if given; their results, the cores each role used, and the backlog."""
        meter = cpu.CpuMeter(self.cpu_roles()).start()
        running = []
        try:
            with self._backlog() if self.redis else contextlib.nullcontext() as sampler:
                running = [start() for start in starters]
                side = during() if during else None
                results = [load.wrk_result(process) for process in running]
        finally:
            for process in running:
                process.kill()
        cores = meter.stop()
        cores["load"] = round(sum(r["generator_cores"] for r in results), 3)
        # Whatever the host ran besides the processes under test and the load: other tenants.
        cores["others"] = round(max(0.0, cores["machine"] - sum(
            v for k, v in cores.items() if k != "machine")), 3)
        window = {"cpu_cores": cores, "results": results}
        if during:
            window["during"] = side
        if self.redis:
            backlog = [_undrained(sample) for sample in sampler.samples] or [0]
            window["backlog"] = {"max_backlog": max(backlog), "last_backlog": backlog[-1],
                                 "samples": sampler.samples}
        self.accepted += sum(r["counters"].get(kind, 0) for r in results
                             for kind in ("initial_ok", "followup_ok"))
        return window

    def settle(self):
        """Redis: get every accepted event into og.events (drain now, or wait for the worker)."""
        if self.backend != "redis":
            return None
        started = time.monotonic()
        if self.worker_running:
            sampler = self._backlog()
            wait_for(lambda: _undrained(sampler.sample(0)) == 0,
                     f"{self.label}: the worker's catch-up", DRAIN_WAIT_S, pause_s=0.2)
        else:
            self.stack.ingest(self.env, "run", "--burst")
        return round(time.monotonic() - started, 2)

    def check(self):
        """og.events gained exactly what the API appended, and the stream is drained."""
        if self.backend != "redis":
            return None
        # Requests in flight when wrk stopped may still append after settle(): while the
        # counts differ, drain again (a real loss stays a difference).
        for _ in range(3):
            appended = _entries_added(self.redis, self.partitions) - self.added_before
            stored = count_events(self.stack, self.store) - self.events_before
            if stored == appended:
                break
            self.settle()
        left = self._backlog().sample(0)
        verdict = {"appended": appended, "stored": stored, "answered_200": self.accepted,
                   "undrained": _undrained(left), "stream_length": left["length"]}
        verdict["ok"] = stored == appended >= self.accepted and verdict["undrained"] == 0
        if not verdict["ok"]:
            log.warning("%s: og.events check FAILED: %s", self.label, verdict)
        return verdict


def progress(number, label, what, window):
    for r in window["results"]:
        log.info("round %d %-13s %-18s %8.0f ok/s  p50 %s  p99 %s  p99.9 %s ms  errors %d"
                 " (wrk %.2f cores)", number, label, what, r["ok_per_s"], r["p50_ms"],
                 r["p99_ms"], r["p999_ms"], r["errors"], r["generator_cores"])


def checks_line(checks):
    """One line saying whether every accepted event reached og.events."""
    bad = [c for c in checks if not c["ok"]]
    if bad:
        return f"**Event checks FAILED** for {len(bad)} of {len(checks)} windows: {bad}"
    return (f"**Every accepted event reached og.events**: {len(checks)} checks, "
            f"{n(sum(c['stored'] for c in checks))} events (method: benchmarks/README.md)."
            if checks else "")
