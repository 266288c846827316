"""/dashboard/range from the time buckets vs the old scan vs SQLite, on uneven 30-day stores
(method: benchmarks/README.md)."""
import contextlib
import http.client
import json
import logging
import math
import os
import threading
import time
from collections import Counter, defaultdict
from datetime import timedelta

from sqlalchemy.exc import OperationalError

from benchmarks import cpu, plots, range_store
from benchmarks.report import get, n, targets_table, verdict
from benchmarks.range_windows import KINDS, Generator
from core import event_store, range_buckets
from server.sqlite_interface import SQLiteInterface

log = logging.getLogger("benchmarks")

DATABASE = "og_range"
WINDOW_SEED = 20_240_501
"""The same windows at every store size (the stores span the same 30 days)."""
WARMUP_PER_CLIENT = 10
"""Windows each concurrent client asks before anything is measured on a new API: its
first requests open the gunicorn connections and grow the API's MariaDB pools (tens of
ms each; reported as "warmup", apart from the measured figures)."""
REQUEST_TIMEOUT_S = 30
SCAN_STATEMENT_S = 30
"""max_statement_time of one in-process scan (a whole-history scan of 10M events: ~10 s)."""
SAMPLE_S = 0.05
OVERLOAD_BEFORE_S = 1.0
OVERLOAD_AFTER_S = 5.0
OVERLOAD_CAP_S = 60.0
TARGETS = {"sequential_p99_ms": 50, "concurrent_p99_ms": 100, "errors": 0, "mismatches": 0}
RUNNING = ("SELECT COUNT(*) FROM information_schema.PROCESSLIST"
           " WHERE USER = 'og' AND COMMAND = 'Query'")


def percentile(values, q):
    """Nearest rank: the smallest value with at least q of them at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def latency(ms, **extra):
    return {"queries": len(ms), "p50_ms": _r(percentile(ms, 0.5)), "p99_ms": _r(percentile(ms, 0.99)),
            "max_ms": _r(max(ms) if ms else None), **extra}


def _r(value):
    return None if value is None else round(value, 2)


def by_kind(windows, ms):
    kinds = defaultdict(list)
    for window, value in zip(windows, ms):
        kinds[window.kind].append(value)
    return {kind: {"queries": len(v), "p50_ms": _r(percentile(v, 0.5)), "max_ms": _r(max(v))}
            for kind, v in sorted(kinds.items())}


# --- the API ---------------------------------------------------------------------------


class Client:
    """One keep-alive HTTP connection; get() -> (status or error name, ms, answer)."""

    def __init__(self, port):
        self.port = port
        self.connection = None

    def connect(self):
        self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT_S)
        self.connection.connect()

    def get(self, path):
        if self.connection is None:
            self.connect()
        began = time.perf_counter()
        try:
            self.connection.request("GET", path)
            response = self.connection.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as error:
            self.close()
            return type(error).__name__, (time.perf_counter() - began) * 1000, None
        ms = (time.perf_counter() - began) * 1000
        return response.status, ms, json.loads(body) if response.status == 200 else body[:300].decode(
            errors="replace")

    def close(self):
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def _ask(port, windows, cap_s):
    """Ask the windows one after another on one connection, until done or cap_s."""
    client, out = Client(port), []
    stop = time.monotonic() + cap_s
    try:
        for window in windows:
            if time.monotonic() > stop:
                break
            out.append(client.get(window.path))
    finally:
        client.close()
    return out


def _api_summary(replies, wanted, seconds, **extra):
    statuses = Counter(str(status) for status, _, _ in replies)
    errors = sum(n for status, n in statuses.items() if status != "200")
    return latency([ms for _, ms, _ in replies], errors=errors, statuses=dict(statuses),
                   wanted=wanted, complete=len(replies) == wanted, seconds=round(seconds, 2),
                   queries_per_s=round(len(replies) / seconds, 1) if seconds else None, **extra)


def sequential(port, windows, cap_s):
    began = time.monotonic()
    replies = _ask(port, windows, cap_s)
    return _api_summary(replies, len(windows), time.monotonic() - began), replies


def concurrent(port, groups, cap_s):
    """Each group on its own client thread, all started together; bounded by cap_s."""
    results = [None] * len(groups)
    barrier = threading.Barrier(len(groups) + 1)

    def client(i):
        barrier.wait(timeout=30)
        results[i] = _ask(port, groups[i], cap_s)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(len(groups))]
    for thread in threads:
        thread.start()
    barrier.wait(timeout=30)
    began = time.monotonic()
    for thread in threads:
        thread.join(cap_s + REQUEST_TIMEOUT_S + 5)
    seconds = time.monotonic() - began
    replies = [reply for result in results if result for reply in result]
    return _api_summary(replies, sum(map(len, groups)), seconds, clients=len(groups),
                        per_client=len(groups[0]) if groups else 0), results


class RunningSampler:
    """Counts og's running queries in MariaDB every SAMPLE_S from a root connection."""

    def __init__(self, server):
        self.connection = server.connect()
        self.samples = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        began = time.monotonic()
        with self.connection.cursor() as cursor:
            while not self._stop.is_set() and time.monotonic() - began < OVERLOAD_CAP_S + 30:
                cursor.execute(RUNNING)
                self.samples.append((time.monotonic(), cursor.fetchone()[0]))
                self._stop.wait(SAMPLE_S)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *_):
        self._stop.set()
        self._thread.join(10)
        self.connection.close()


def overload(server, port, windows):
    """len(windows) clients, connected first, each sends one distinct window at once."""
    replies = [None] * len(windows)
    barrier = threading.Barrier(len(windows) + 1)

    def client(i):
        c = Client(port)
        try:
            try:
                c.connect()
            finally:
                barrier.wait(timeout=60)
            status, ms, _ = c.get(windows[i].path)
            replies[i] = (status, ms, time.monotonic())
        except (OSError, http.client.HTTPException, threading.BrokenBarrierError) as error:
            replies[i] = (type(error).__name__, None, time.monotonic())
        finally:
            c.close()

    with RunningSampler(server) as sampler:
        time.sleep(OVERLOAD_BEFORE_S)
        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(len(windows))]
        for thread in threads:
            thread.start()
        barrier.wait(timeout=60)
        began = time.monotonic()
        deadline = began + OVERLOAD_CAP_S
        for thread in threads:
            thread.join(max(0.1, deadline - time.monotonic()))
        ended = max((r[2] for r in replies if r), default=time.monotonic())
        # Sample on for a few seconds after the last answer, and until nothing runs.
        while time.monotonic() < ended + OVERLOAD_AFTER_S or (
                sampler.samples and sampler.samples[-1][1] and time.monotonic() < deadline + 30):
            time.sleep(SAMPLE_S)
    statuses = Counter(str(r[0]) if r else "no answer" for r in replies)
    ms = [r[1] for r in replies if r and r[1] is not None]
    during = [(t, n) for t, n in sampler.samples if t >= began]
    busy = [t for t, n in during if n > 0]
    return {
        "clients": len(windows), "statuses": dict(statuses),
        "ok": statuses.get("200", 0), "unavailable_503": statuses.get("503", 0),
        "other": len(windows) - statuses.get("200", 0) - statuses.get("503", 0),
        "burst_s": round(ended - began, 3),
        **{k: v for k, v in latency(ms).items() if k != "queries"},
        "max_running_queries": max((n for _, n in during), default=0),
        "running_before_burst": max((n for t, n in sampler.samples if t < began), default=0),
        "last_running_after_start_s": round(busy[-1] - began, 3) if busy else None,
        "running_after_burst_s": round(max(0.0, busy[-1] - ended), 3) if busy else 0.0,
        "samples": [(round(t - began, 3), n) for t, n in sampler.samples],
        "answers": sorted((round(r[2] - began, 3), str(r[0])) for r in replies if r),
    }


# --- in-process: buckets, the old scan, SQLite ----------------------------------------


def in_process(engine, windows, scan_count, scan_budget_s):
    """Buckets on every window, the old scan on the first ones within its bounds."""
    bucket_ms, bucket_answers = [], []
    with engine.connect() as connection:
        for window in windows:
            began = time.perf_counter()
            bucket_answers.append(range_buckets.summarize(connection, window.low, window.high))
            bucket_ms.append((time.perf_counter() - began) * 1000)
            connection.rollback()
    scan_ms, scanned, timeouts, mismatches = [], [], 0, []
    stop = time.monotonic() + scan_budget_s
    with engine.connect() as connection:
        connection.exec_driver_sql(f"SET SESSION max_statement_time = {SCAN_STATEMENT_S}")
        for window, expected in zip(windows[:scan_count], bucket_answers):
            if time.monotonic() > stop:
                break
            began = time.perf_counter()
            try:
                answer = event_store.scan_summary(connection, window.low, window.high)
            except OperationalError as error:
                connection.rollback()
                timeouts += 1
                log.warning("range: scan of %s stopped: %s", window.as_dict(), error.orig)
                continue
            scan_ms.append((time.perf_counter() - began) * 1000)
            scanned.append(window)
            connection.rollback()
            if answer != expected:
                mismatches.append({"window": window.as_dict(), "buckets": expected, "scan": answer})
                log.error("range: MISMATCH on %s:\n buckets %s\n scan    %s", window.as_dict(),
                          expected, answer)
    return {
        "buckets": latency(bucket_ms, by_kind=by_kind(windows, bucket_ms)),
        "scan": latency(scan_ms, timeouts=timeouts, wanted=min(scan_count, len(windows)),
                        budget_s=scan_budget_s, complete=len(scanned) + timeouts == min(scan_count, len(windows)),
                        by_kind=by_kind(scanned, scan_ms)),
        "compared": len(scanned), "mismatches": len(mismatches), "mismatch_details": mismatches[:10],
    }, bucket_answers


def sqlite_run(stack, server, events, windows, expected, plan):
    if events > plan.range_sqlite_max_events:
        return {"skipped": f"{events:,} events is above plan.range_sqlite_max_events "
                           f"({plan.range_sqlite_max_events:,})"}
    path = stack.dir / "sqlite-range" / f"og-{events}.sqlite3"
    path.unlink(missing_ok=True)
    connection = server.connect(database=DATABASE)
    try:
        rows, copy_s = range_store.copy_to_sqlite(connection, str(path))
    finally:
        connection.close()
    log.info("range: SQLite copy of %d conversations in %.1f s", rows, copy_s)
    sqlite = SQLiteInterface(str(path), policy=None)
    ms, mismatches, asked = [], 0, []
    stop = time.monotonic() + plan.range_sqlite_budget_s
    for window, want in zip(windows[:plan.range_sqlite_queries], expected):
        if time.monotonic() > stop:
            break
        began = time.perf_counter()
        answer = sqlite.dashboard_range(window.low, window.high)
        ms.append((time.perf_counter() - began) * 1000)
        asked.append(window)
        mismatches += answer != want
    for leftover in path.parent.glob(path.name + "*"):
        leftover.unlink()
    wanted = min(plan.range_sqlite_queries, len(windows))
    return {"conversations": rows, "copy_s": copy_s, "budget_s": plan.range_sqlite_budget_s,
            **latency(ms, wanted=wanted, complete=len(ms) == wanted, by_kind=by_kind(asked, ms)),
            "differs_from_buckets": mismatches}


# --- the scenario ----------------------------------------------------------------------


def _database(server):
    connection = server.connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
            cursor.execute(f"CREATE DATABASE {DATABASE}")
            for host in ("127.0.0.1", "localhost"):
                cursor.execute(f"GRANT ALL ON {DATABASE}.* TO 'og'@'{host}'")
    finally:
        connection.close()
    return f"mysql+pymysql://og:og@127.0.0.1:{server.port}/{DATABASE}"


def _drop(server):
    connection = server.connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
    finally:
        connection.close()


def preload(server, engine, add, end, first_g, seed):
    """Grow og_range.events by `add` events, then rebuild the buckets; both timed."""
    connection = server.connect(database=DATABASE)
    try:
        generated = range_store.generate(connection, add, end, first_g=first_g, seed=seed)
    finally:
        connection.close()
    began = time.monotonic()
    days = range_buckets.rebuild(engine)
    rebuild_s = round(time.monotonic() - began, 1)
    connection = server.connect(database=DATABASE)
    try:
        with connection.cursor() as cursor:
            # Fresh statistics, as InnoDB's background recalculation would have them after a
            # bulk load: the table sizes below come from them.
            cursor.execute("ANALYZE TABLE events, range_buckets")
            cursor.fetchall()
            cursor.execute("SELECT span_s, COUNT(*) FROM range_buckets GROUP BY span_s")
            buckets = {str(span): n for span, n in cursor.fetchall()}
            cursor.execute("SELECT COUNT(*) FROM events")
            stored = cursor.fetchone()[0]
            cursor.execute("SELECT table_name, data_length + index_length FROM information_schema.TABLES"
                           f" WHERE table_schema = '{DATABASE}'")
            sizes = {name: round(size / 2**20, 1) for name, size in cursor.fetchall()}
    finally:
        connection.close()
    log.info("range: +%d events in %.1f s, buckets rebuilt (%d days) in %.1f s; og.events holds %d",
             add, generated["seconds"], days, rebuild_s, stored)
    return {"added": add, "generate_s": generated["seconds"], "rebuild_s": rebuild_s,
            "total_s": round(generated["seconds"] + rebuild_s, 1), "days": days, "stored": stored,
            "buckets": buckets, "table_mib": sizes, "shape": generated}


def _cores(meter):
    """Cores used by the API, MariaDB, this process (the clients), and other tenants."""
    cores = meter.stop()
    cores["others"] = round(max(0.0, cores["machine"] - cores["api"] - cores["mariadb"]
                                - cores["clients"]), 3)
    return cores


def _log_latency(events, what, figures):
    cores = figures.get("cpu_cores")
    log.info("range %11s events  %-22s n=%4d  p50 %7s ms  p99 %7s ms  max %7s ms%s%s", f"{events:,}",
             what, figures["queries"], figures["p50_ms"], figures["p99_ms"], figures["max_ms"],
             f"  errors {figures['errors']}" if "errors" in figures else "",
             f"  (cores: API {cores['api']}, MariaDB {cores['mariadb']}, clients {cores['clients']},"
             f" other tenants {cores['others']})" if cores else "")


def run(stack, plan):
    server = stack.mariadb()
    url = _database(server)
    engine = event_store.build_engine(url)
    end = range_store.window_end()
    first = end - timedelta(days=range_store.DAYS)
    generator = Generator(first, end, WINDOW_SEED)
    warmup = plan.range_clients * WARMUP_PER_CLIENT
    total = (warmup + plan.range_sequential + plan.range_clients * plan.range_per_client
             + plan.range_overload_clients)
    windows = generator.take(total)
    warm, rest = windows[:warmup], windows[warmup:]
    warm_groups = [warm[i::plan.range_clients] for i in range(plan.range_clients)]
    seq, rest = rest[:plan.range_sequential], rest[plan.range_sequential:]
    groups = [rest[i * plan.range_per_client:(i + 1) * plan.range_per_client]
              for i in range(plan.range_clients)]
    burst = rest[plan.range_clients * plan.range_per_client:]
    result = {"database": DATABASE, "from": str(first), "to": str(end), "targets": TARGETS,
              "windows": {"distinct": len(windows), "kinds": dict(Counter(w.kind for w in windows)),
                          "kind_weights": KINDS, "seed": WINDOW_SEED,
                          "examples": [w.as_dict() for w in seq[:12]]},
              "sizes": []}
    stored, first_g = 0, 0
    try:
        event_store.create_tables(engine)
        for number, events in enumerate(plan.range_events):
            size = {"events": events}
            size["preload"] = preload(server, engine, events - stored, end, first_g, chr(ord("a") + number))
            first_g += size["preload"]["shape"]["conversations"]
            stored = events
            env = stack.env("redis", DATABASE_URL=url)
            with stack.api(f"range-{events}", env) as api:
                roles = {"api": cpu.api_pids(api), "mariadb": cpu.pid_of(server),
                         "clients": lambda: [os.getpid()]}
                size["warmup"], _ = concurrent(api.port, warm_groups, plan.range_cap_s)
                _log_latency(events, "API warm-up (cold)", size["warmup"])
                meter = cpu.CpuMeter(roles).start()
                size["sequential"], seq_replies = sequential(api.port, seq, plan.range_cap_s)
                size["sequential"]["cpu_cores"] = _cores(meter)
                _log_latency(events, "API sequential", size["sequential"])
                meter = cpu.CpuMeter(roles).start()
                size["concurrent"], _ = concurrent(api.port, groups, plan.range_cap_s)
                size["concurrent"]["cpu_cores"] = _cores(meter)
                _log_latency(events, f"API {plan.range_clients} clients", size["concurrent"])
                if number == len(plan.range_events) - 1:
                    size["overload"] = overload(server, api.port, burst)
                    o = size["overload"]
                    log.info("range %11s events  overload: %d clients at once -> %s; p50 %s p99 %s "
                             "max %s ms; at most %d queries running in MariaDB; last seen running "
                             "%.2f s after the burst's last answer", f"{events:,}", o["clients"],
                             o["statuses"], o["p50_ms"], o["p99_ms"], o["max_ms"],
                             o["max_running_queries"], o["running_after_burst_s"])
            size["in_process"], answers = in_process(engine, seq, plan.range_scan_queries,
                                                     plan.range_scan_budget_s)
            _log_latency(events, "buckets in-process", size["in_process"]["buckets"])
            _log_latency(events, "old scan in-process", size["in_process"]["scan"])
            log.info("range %11s events  %d windows compared (buckets vs scan): %d mismatches",
                     f"{events:,}", size["in_process"]["compared"], size["in_process"]["mismatches"])
            api_diff = [w.as_dict() for w, (status, _, body), want in zip(seq, seq_replies, answers)
                        if status == 200 and body != want]
            size["sequential"]["differs_from_in_process"] = len(api_diff)
            size["sequential"]["differing_windows"] = api_diff[:10]
            if api_diff:
                log.error("range: %d API answers differ from the in-process bucket answers: %s",
                          len(api_diff), api_diff[:3])
            size["sqlite"] = sqlite_run(stack, server, events, seq, answers, plan)
            if "skipped" not in size["sqlite"]:
                _log_latency(events, "SQLite in-process", size["sqlite"])
            result["sizes"].append(size)
    finally:
        engine.dispose()
        with contextlib.suppress(Exception):
            _drop(server)
    return result



def targets(result):
    sizes = get(result, "sizes")
    if not sizes:
        return [("range: sequential p99 < 50 ms, 8 clients p99 < 100 ms, 0 errors, 0 mismatches (10M events)",
                 "not measured", None)]
    goals, size = result["targets"], sizes[-1]
    at, seq, conc = f"{size['events']:,} events", size["sequential"], size["concurrent"]
    errors = seq["errors"] + conc["errors"]
    missing = (seq["wanted"] - seq["queries"]) + (conc["wanted"] - conc["queries"])
    mismatches = sum(s["in_process"]["mismatches"] + s["sequential"].get("differs_from_in_process", 0)
                     for s in sizes)
    compared = sum(s["in_process"]["compared"] for s in sizes)
    return [verdict(f"range, one query at a time: p99 < {goals['sequential_p99_ms']} ms ({at})",
                    seq["p99_ms"], goals["sequential_p99_ms"], "lower", " ms", "{:.1f}"),
            verdict(f"range, {conc['clients']} concurrent clients: p99 < {goals['concurrent_p99_ms']} ms ({at})",
                    conc["p99_ms"], goals["concurrent_p99_ms"], "lower", " ms", "{:.1f}"),
            (f"range: 0 errors, one at a time and concurrent ({at})",
             f"{errors} errors in {seq['queries'] + conc['queries']} queries"
             + (f", {missing} not asked within the time bound" if missing else ""), errors == 0 and missing == 0),
            ("range: 0 mismatches, buckets vs the old scan and API vs in-process (every size)",
             f"{mismatches} in {compared} windows compared", mismatches == 0 and compared > 0)]


def _cores_note(part):
    c = part.get("cpu_cores")
    return (f"; cores: API {c['api']:.2f}, MariaDB {c['mariadb']:.2f}, clients {c.get('clients', 0):.2f}, "
            f"other tenants {c.get('others', 0):.2f}") if c else ""


def _row(at, what, part, errors="–", note=""):
    return (at, what, part["queries"], n(part["p50_ms"], 1), n(part["p99_ms"], 1), n(part["max_ms"], 1), errors, note)


def _bounded(part):
    return "all windows" if part["complete"] else \
        f"first {part['queries'] + part.get('timeouts', 0)} of {part['wanted']} windows ({part['budget_s']} s budget)"


def render(r, table):
    sizes = r["sizes"]
    if not sizes:
        return ["## /dashboard/range: buckets vs the old scan vs SQLite", "", "No store was measured."]
    preload_rows, rows, checks = [], [], []
    for s in sizes:
        p, at = s["preload"], f"{s['events']:,}"
        preload_rows.append((at, f"+{p['added']:,}", p["generate_s"], p["rebuild_s"], p["total_s"],
                             " / ".join(n(p["buckets"].get(span)) for span in ("1", "60", "3600", "86400")),
                             n(p["table_mib"].get("events"), 1), n(p["table_mib"].get("range_buckets"), 1)))
        seq, conc, inp, q, warm = s["sequential"], s["concurrent"], s["in_process"], s["sqlite"], s.get("warmup")
        if warm:
            rows.append(_row(at, f"(cold API: warm-up, {warm['clients']} clients × {warm['per_client']})",
                             warm, warm["errors"], "not counted"))
        rows += [_row(at, "buckets, API, one at a time", seq, seq["errors"], f"{seq['queries_per_s']} queries/s" + _cores_note(seq)),
                 _row(at, f"buckets, API, {conc['clients']} clients × {conc['per_client']}", conc, conc["errors"],
                      f"{conc['queries_per_s']} queries/s" + _cores_note(conc)),
                 _row(at, "buckets, in-process (range_buckets.summarize)", inp["buckets"]),
                 _row(at, "old scan, in-process (event_store.scan_summary)", inp["scan"],
                      f"{inp['scan']['timeouts']} stopped", _bounded(inp["scan"]))]
        rows.append((at, "SQLite, in-process", "–", "–", "–", "–", "–", q["skipped"]) if "skipped" in q else
                    _row(at, "SQLite, in-process (SQLiteInterface.dashboard_range)", q, "–",
                         _bounded(q) + f"; copied in {q['copy_s']} s"))
        checks.append(f"- {at} events: buckets vs old scan **{inp['mismatches']} mismatches** in {inp['compared']} "
                      f"windows; API vs in-process buckets {seq['differs_from_in_process']} differences in "
                      f"{seq['queries']} answers" + ("" if "skipped" in q else
                      f"; SQLite vs buckets {q['differs_from_buckets']} differences in {q['queries']}"))
    kinds = sizes[-1]["in_process"]
    scan = kinds["scan"]["by_kind"]
    lines = ["## /dashboard/range: buckets vs the old scan vs SQLite", "",
             f"Stores of {', '.join(format(s['events'], ',') for s in sizes)} events over 30 days "
             f"({r['from']} to {r['to']} UTC), made inside MariaDB (benchmarks/range_store.py).", "",
             *table(("store", "added", "generate s", "rebuild s", "total s", "buckets 1 s / 1 min / 1 h / 1 day",
                     "og.events MiB", "range_buckets MiB"), preload_rows), "",
             f"{r['windows']['distinct']:,} distinct windows: "
             + ", ".join(f"{k} {v}" for k, v in sorted(r["windows"]["kinds"].items())) + ".", "",
             *table(("store", "what", "queries", "p50 ms", "p99 ms", "max ms", "errors", "note"), rows), "",
             "### Targets", "", *targets_table([t for t in targets(r)]), "",
             "### Correctness", "", *checks, "",
             "### Latency by kind of window, biggest store (in-process)", "",
             *table(("kind", "windows", "buckets p50 ms", "buckets max ms", "windows scanned", "old scan p50 ms",
                     "old scan max ms"),
                    [(k, b["queries"], n(b["p50_ms"], 2), n(b["max_ms"], 2), get(scan, k, "queries") or 0,
                      n(get(scan, k, "p50_ms"), 1), n(get(scan, k, "max_ms"), 1))
                     for k, b in kinds["buckets"]["by_kind"].items()])]
    o = sizes[-1].get("overload")
    if o:
        lines += ["", f"### Overload: {o['clients']} clients, one distinct window each, at once "
                  f"({sizes[-1]['events']:,} events)", "",
                  f"Answers: {o['statuses']} (200: {o['ok']}, 503: {o['unavailable_503']}, other: {o['other']}); "
                  f"the last {o['burst_s']} s after the burst started; latency p50 {n(o['p50_ms'], 1)} ms, "
                  f"p99 {n(o['p99_ms'], 1)} ms, max {n(o['max_ms'], 1)} ms. At most **{o['max_running_queries']}** "
                  "queries running in MariaDB at once; " + ("none seen running after the last answer."
                  if not o["running_after_burst_s"] else f"some still running **{o['running_after_burst_s']} s** after it.")]
    return lines


SERIES = (("buckets, API, one at a time", "#1f77b4", lambda s: s["sequential"]),
          ("buckets, API, concurrent", "#2ca02c", lambda s: s["concurrent"]),
          ("buckets, in-process", "#17becf", lambda s: s["in_process"]["buckets"]),
          ("old scan, in-process", "#ff7f0e", lambda s: s["in_process"]["scan"]),
          ("SQLite, in-process", "#d62728", lambda s: s["sqlite"]))


def plot(r, out):
    sizes = r["sizes"]
    if not sizes:
        return []
    overload = sizes[-1].get("overload")
    figure, axes = plots.panels(2 if overload else 1, 6.5, 6)
    axis = axes[0]
    for label, color, pick in SERIES:
        points = [(s["events"], pick(s)) for s in sizes if pick(s).get("p50_ms") is not None]
        for key, style in (("p50_ms", "-o"), ("p99_ms", "--s")):
            axis.plot([e for e, _ in points], [f[key] for _, f in points], style, color=color,
                      label=f"{label} {key[:3]}")
    for key in ("sequential_p99_ms", "concurrent_p99_ms"):
        axis.axhline(r["targets"][key], color="#555555", linestyle=":", linewidth=0.8)
    axis.set(xscale="log", yscale="log", xlabel="events stored (30 uneven days)", ylabel="ms per query",
             title="Range dashboard: buckets vs old scan vs SQLite (same windows)")
    axis.legend(fontsize=7, ncol=2)
    if overload:
        axis = axes[1]
        samples = overload["samples"]
        axis.step([t for t, _ in samples], [c for _, c in samples], where="post")
        axis.axvline(overload["burst_s"], color="#d62728", linestyle=":")
        axis.set(xlabel="seconds from the burst (red: its last answer)", ylabel="queries of og running in MariaDB",
                 title=f"Overload: {overload['clients']} distinct windows at once, {sizes[-1]['events']:,} events")
    return plots.save(figure, out, "range")
