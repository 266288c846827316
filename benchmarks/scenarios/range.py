"""/dashboard/range from the time buckets vs the old scan vs SQLite, on uneven 30-day stores,
asked seeded distinct windows of every kind (method: benchmarks/README.md)."""
import contextlib
import itertools
import json
import logging
import math
import os
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.client import HTTPConnection, HTTPException
from urllib.parse import quote

from sqlalchemy.exc import OperationalError

from benchmarks import cpu, plots, range_store
from benchmarks.report import get, n, targets_table, verdict
from benchmarks.targets import sql
from core import event_store, range_buckets
from server.sqlite_interface import SQLiteInterface
from server.validation import parse_range

log = logging.getLogger("benchmarks")

DATABASE = "og_range"
WINDOW_SEED = 20_240_501  # the same windows at every store size (they span the same 30 days)
# Windows each client asks of a new API before anything is measured: its first requests open
# the gunicorn connections and grow the API's MariaDB pools (tens of ms each).
WARMUP_PER_CLIENT = 10
REQUEST_TIMEOUT_S = 30
SCAN_STATEMENT_S = 30  # max_statement_time of one old scan (of 10M events' history: ~10 s)
SAMPLE_S = 0.05
OVERLOAD_BEFORE_S, OVERLOAD_AFTER_S, OVERLOAD_CAP_S = 1.0, 5.0, 60.0
TARGETS = {"sequential_p99_ms": 50, "concurrent_p99_ms": 100, "errors": 0, "mismatches": 0}
KINDS = {"day": 4, "days": 8, "micros": 20, "subsecond": 10, "minute_edge": 10, "hour_edge": 10,
         "day_edge": 10, "before": 4, "after": 4, "partial": 8, "history": 4, "seconds": 8}
EDGES = {"minute_edge": 60, "hour_edge": 3600, "day_edge": 86400}
SPANS = ("1", "60", "3600", "86400")  # of the range buckets, in seconds


@dataclass(frozen=True)
class Window:
    kind: str
    lower: str  # the bounds as asked, unquoted ...
    upper: str
    low: datetime  # ... and as the API parses them: what the in-process queries are given
    high: datetime

    def as_dict(self):
        return {"kind": self.kind, "lower": self.lower, "upper": self.upper}


def make_windows(first, last, count):
    """`count` windows over data from first to last, distinct as the API parses them (so no
    two share an answer through its single flight); kinds drawn by weight, a kind that runs
    out of distinct windows (single days) giving way to the others."""
    r, seen, out = random.Random(WINDOW_SEED), set(), []

    def moment(low=first, high=last):
        return low + timedelta(microseconds=r.randrange((high - low) // timedelta(microseconds=1)))

    def date(pad_days):
        days = (last.date() - first.date()).days
        return first.date() + timedelta(days=r.randint(-pad_days, days + pad_days))

    def text(at, digits=None):
        """A bound as server/validation.py takes it: a space or a 'T', 0, 3 or 6 digits."""
        digits = r.choice((0, 3, 6, 6)) if digits is None else digits
        seconds = at.strftime(f"%Y-%m-%d{r.choice((' ', ' ', 'T'))}%H:%M:%S")
        return seconds + f".{at.microsecond:06d}"[:digits + 1] if digits else seconds

    def cut(at, digits):
        unit = 10 ** (6 - digits)
        return at.replace(microsecond=at.microsecond // unit * unit)

    def bounds(kind):
        if kind == "day":
            return (date(2).isoformat(),) * 2
        if kind == "days":
            a = date(1)
            return a.isoformat(), (a + timedelta(days=r.randint(1, 29))).isoformat()
        if kind in ("micros", "seconds"):
            digits = 6 if kind == "micros" else 0
            length = timedelta(seconds=10 ** r.uniform(0, 6.4))  # 1 s .. ~29 days
            low = cut(moment(high=last - length / 2), digits)
            return text(low, digits), text(cut(low + length, digits), digits)
        if kind == "subsecond":  # a zero-length one among them
            low = moment()
            high = low + timedelta(microseconds=r.choice((0, r.randrange(1, 1_000_000))))
            return text(low, 6), text(high, 6)
        if kind in EDGES:  # across a minute, an hour or a day boundary
            unit = EDGES[kind]
            since = int((moment() - range_store.EPOCH).total_seconds())
            edge = range_store.EPOCH + timedelta(seconds=since // unit * unit)
            before, after = (timedelta(microseconds=r.randrange(a, unit * 10**6)) for a in (1, 0))
            digits = r.choice((0, 3, 6))
            return text(cut(edge - before, digits), digits), text(cut(edge + after, digits), digits)
        if kind in ("before", "after"):  # wholly outside the data
            gap, length = (timedelta(seconds=10 ** r.uniform(-3, e)) for e in (7, 8))
            low = first - gap - length if kind == "before" else last + timedelta(days=1) + gap
            return text(low, 6), text(low + length, 6)
        if kind == "partial":  # from before the data into it, or from inside it to past it
            if r.random() < 0.5:
                return text(first - timedelta(seconds=10 ** r.uniform(0, 6))), text(moment(), 6)
            high = last + timedelta(seconds=10 ** r.uniform(0, 6))
            return text(moment(), 6), text(high)
        low = first - timedelta(days=r.randint(1, 3000))  # history: all of it, and years more
        high = last + timedelta(days=r.randint(2, 3000))
        if r.random() < 0.5:
            return low.date().isoformat(), high.date().isoformat()
        return text(low), text(high)

    while len(out) < count:
        kind = r.choices(list(KINDS), list(KINDS.values()))[0]
        for _ in range(30):
            lower, upper = bounds(kind)
            low, high = parse_range(lower, upper)
            if (low, high) not in seen:
                seen.add((low, high))
                out.append(Window(kind, lower, upper, low, high))
                break
    return out


def percentile(values, q):
    """Nearest rank (the smallest value with at least q of them at or below it), to 0.01."""
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(q * len(ordered)) - 1)], 2) if ordered else None


def latency(ms, **extra):
    return {"queries": len(ms), "p50_ms": percentile(ms, 0.5), "p99_ms": percentile(ms, 0.99),
            "max_ms": percentile(ms, 1), **extra}


def _timed(windows, budget_s, ask, after=lambda: None):
    """[(window, ms, answer)] of ask(window), then after() untimed, for each window until
    budget_s is spent."""
    stop, out = time.monotonic() + budget_s, []
    for window in windows:
        if time.monotonic() > stop:
            break
        began = time.perf_counter()
        answer = ask(window)
        out.append((window, (time.perf_counter() - began) * 1000, answer))
        after()
    return out


def _clients(port, groups, cap_s):
    """Each group of windows asked in order by its own thread on one keep-alive connection,
    opened before all threads are released at once; none starts a window after cap_s. Returns
    the release's moment and the replies: (status or error name, ms, JSON answer, done at)."""
    barrier, results = threading.Barrier(len(groups) + 1), [[] for _ in groups]

    def client(i):
        connection = HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT_S)

        def ask(window):
            try:
                connection.request("GET", f"/dashboard/range/{quote(window.lower, safe=':')}/"
                                          f"{quote(window.upper, safe=':')}")
                response = connection.getresponse()
                return response.status, response.read(), time.monotonic()
            except (OSError, HTTPException) as error:
                connection.close()  # the next request opens a new connection
                return type(error).__name__, None, time.monotonic()

        try:
            with contextlib.suppress(OSError):  # then the first request connects, or says why
                connection.connect()
        finally:
            barrier.wait(timeout=60)
        results[i] = [(status, ms, json.loads(body) if status == 200 else None, done)
                      for _, ms, (status, body, done) in _timed(groups[i], cap_s, ask)]
        connection.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(len(groups))]
    for thread in threads:
        thread.start()
    barrier.wait(timeout=60)
    began = time.monotonic()
    for thread in threads:
        thread.join(max(0.1, began + cap_s + REQUEST_TIMEOUT_S + 5 - time.monotonic()))
    return began, [reply for replies in results for reply in replies]


def through_api(port, groups, cap_s, roles):
    """(replies, summary) of _clients, with the cores used meanwhile by the API, MariaDB, this
    process (the clients) and other tenants."""
    meter = cpu.CpuMeter(roles).start()
    began, replies = _clients(port, groups, cap_s)
    seconds, cores = time.monotonic() - began, meter.stop()
    cores["others"] = round(max(0.0, cores["machine"] - cores["api"] - cores["mariadb"]
                                - cores["clients"]), 3)
    statuses, wanted = Counter(str(reply[0]) for reply in replies), sum(map(len, groups))
    return replies, latency([reply[1] for reply in replies],
                            errors=sum(k for status, k in statuses.items() if status != "200"),
                            statuses=dict(statuses), wanted=wanted,
                            complete=len(replies) == wanted, seconds=round(seconds, 2),
                            queries_per_s=round(len(replies) / seconds, 1) if seconds else None,
                            cpu_cores=cores)


def overload(server, port, windows):
    """len(windows) clients, connected first, each sends one distinct window at once, while
    og's running queries in MariaDB are counted every SAMPLE_S."""
    samples, stop = [], threading.Event()

    def sample(cursor):
        began = time.monotonic()
        while not stop.is_set() and time.monotonic() - began < OVERLOAD_CAP_S + 30:
            cursor.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST"
                           " WHERE USER = 'og' AND COMMAND = 'Query'")
            samples.append((time.monotonic(), cursor.fetchone()[0]))
            stop.wait(SAMPLE_S)

    with contextlib.closing(server.connect()) as connection, connection.cursor() as cursor:
        sampler = threading.Thread(target=sample, args=(cursor,), daemon=True)
        sampler.start()
        try:
            time.sleep(OVERLOAD_BEFORE_S)
            began, replies = _clients(port, [[window] for window in windows], OVERLOAD_CAP_S)
            ended = max((reply[3] for reply in replies), default=time.monotonic())
            # Sample on for a few seconds after the last answer, and until nothing runs.
            while time.monotonic() < ended + OVERLOAD_AFTER_S or (
                    samples and samples[-1][1] and time.monotonic() < began + OVERLOAD_CAP_S + 30):
                time.sleep(SAMPLE_S)
        finally:
            stop.set()
            sampler.join(10)
    statuses = Counter(str(reply[0]) for reply in replies)
    if len(replies) < len(windows):
        statuses["no answer"] = len(windows) - len(replies)
    ok, unavailable = statuses.get("200", 0), statuses.get("503", 0)
    busy = [t for t, running in samples if t >= began and running]
    figures = latency([reply[1] for reply in replies])
    del figures["queries"]
    return {"clients": len(windows), "statuses": dict(statuses), "ok": ok,
            "unavailable_503": unavailable, "other": len(windows) - ok - unavailable,
            "burst_s": round(ended - began, 3), **figures,
            "max_running_queries": max((k for t, k in samples if t >= began), default=0),
            "running_before_burst": max((k for t, k in samples if t < began), default=0),
            "last_running_after_start_s": round(busy[-1] - began, 3) if busy else None,
            "running_after_burst_s": round(max(0.0, busy[-1] - ended), 3) if busy else 0.0,
            "samples": [(round(t - began, 3), k) for t, k in samples],
            "answers": sorted((round(reply[3] - began, 3), str(reply[0])) for reply in replies)}


def in_process(engine, windows, scan_count, scan_budget_s):
    """Buckets on every window, the old scan on the first ones within its bounds."""
    def scan(window):
        try:
            return event_store.scan_summary(connection, window.low, window.high)
        except OperationalError as error:
            return error

    with engine.connect() as connection:
        buckets = _timed(windows, math.inf, lambda w: range_buckets.summarize(
            connection, w.low, w.high), connection.rollback)
        connection.exec_driver_sql(f"SET SESSION max_statement_time = {SCAN_STATEMENT_S}")
        scans = _timed(windows[:scan_count], scan_budget_s, scan, connection.rollback)
    answers = [answer for _, _, answer in buckets]
    scanned, mismatches = [], []
    for (window, ms, answer), expected in zip(scans, answers):
        if isinstance(answer, OperationalError):
            log.warning("range: scan of %s stopped: %s", window.as_dict(), answer.orig)
            continue
        scanned.append(ms)
        if answer != expected:
            mismatches.append({"window": window.as_dict(), "buckets": expected, "scan": answer})
            log.error("range: MISMATCH on %s", mismatches[-1])
    wanted = min(scan_count, len(windows))
    return {"buckets": latency([ms for _, ms, _ in buckets]),
            "scan": latency(scanned, timeouts=len(scans) - len(scanned), wanted=wanted,
                            budget_s=scan_budget_s, complete=len(scans) == wanted),
            "compared": len(scanned), "mismatches": len(mismatches),
            "mismatch_details": mismatches[:10]}, answers


def sqlite_run(stack, server, events, windows, expected, plan):
    if events > plan.range_sqlite_max_events:
        return {"skipped": f"{events:,} events is above plan.range_sqlite_max_events "
                           f"({plan.range_sqlite_max_events:,})"}
    path = stack.dir / "sqlite-range" / f"og-{events}.sqlite3"
    path.unlink(missing_ok=True)
    with contextlib.closing(server.connect(database=DATABASE)) as connection:
        rows, copy_s = range_store.copy_to_sqlite(connection, str(path))
    sqlite = SQLiteInterface(str(path), policy=None)
    asked = _timed(windows[:plan.range_sqlite_queries], plan.range_sqlite_budget_s,
                   lambda w: sqlite.dashboard_range(w.low, w.high))
    for leftover in path.parent.glob(path.name + "*"):
        leftover.unlink()
    wanted = min(plan.range_sqlite_queries, len(windows))
    return {"conversations": rows, "copy_s": copy_s, "budget_s": plan.range_sqlite_budget_s,
            **latency([ms for _, ms, _ in asked], wanted=wanted, complete=len(asked) == wanted),
            "differs_from_buckets": sum(answer != want
                                        for (_, _, answer), want in zip(asked, expected))}


def preload(server, engine, add, end, first_g, seed):
    """Grow og_range.events by `add` events, then rebuild the buckets; both timed."""
    with contextlib.closing(server.connect(database=DATABASE)) as connection:
        generated = range_store.generate(connection, add, end, first_g=first_g, seed=seed)
    began = time.monotonic()
    days = range_buckets.rebuild(engine)
    rebuild_s = round(time.monotonic() - began, 1)
    # ANALYZE: fresh statistics, as InnoDB's background recalculation would have them after a
    # bulk load; the table sizes come from them.
    _, buckets, ((stored,),), sizes = (sql(server, DATABASE, statement)[1] for statement in (
        "ANALYZE TABLE events, range_buckets",
        "SELECT span_s, COUNT(*) FROM range_buckets GROUP BY span_s", "SELECT COUNT(*) FROM events",
        "SELECT table_name, data_length + index_length FROM information_schema.TABLES"
        f" WHERE table_schema = '{DATABASE}'"))
    return {"added": add, "generate_s": generated["seconds"], "rebuild_s": rebuild_s,
            "total_s": round(generated["seconds"] + rebuild_s, 1), "days": days, "stored": stored,
            "buckets": {str(span): k for span, k in buckets},
            "table_mib": {name: round(size / 2**20, 1) for name, size in sizes},
            "shape": generated}


def run(stack, plan):
    server = stack.mariadb()
    for statement in (f"DROP DATABASE IF EXISTS {DATABASE}", f"CREATE DATABASE {DATABASE}",
                      *(f"GRANT ALL ON {DATABASE}.* TO 'og'@'{host}'"
                        for host in ("127.0.0.1", "localhost"))):
        sql(server, None, statement)
    url = f"mysql+pymysql://og:og@127.0.0.1:{server.port}/{DATABASE}"
    engine = event_store.build_engine(url)
    end = range_store.window_end()
    first = end - timedelta(days=range_store.DAYS)
    clients, per_client = plan.range_clients, plan.range_per_client
    # In this order: the warm-up, one at a time, the concurrent clients, the overload burst.
    cuts = list(itertools.accumulate((clients * WARMUP_PER_CLIENT, plan.range_sequential,
                                      *[per_client] * clients, plan.range_overload_clients),
                                     initial=0))
    windows = make_windows(first, end, cuts[-1])
    warm, seq, *groups, burst = (windows[a:b] for a, b in zip(cuts, cuts[1:]))
    result = {"database": DATABASE, "from": str(first), "to": str(end), "targets": TARGETS,
              "windows": {"distinct": len(windows), "kinds": dict(Counter(w.kind for w in windows)),
                          "kind_weights": KINDS, "seed": WINDOW_SEED,
                          "examples": [w.as_dict() for w in seq[:12]]},
              "sizes": []}
    stored, first_g = 0, 0
    try:
        event_store.create_tables(engine)
        for number, events in enumerate(plan.range_events):
            size = {"events": events, "preload": preload(server, engine, events - stored, end,
                                                         first_g, chr(ord("a") + number))}
            first_g += size["preload"]["shape"]["conversations"]
            stored = events
            with stack.api(f"range-{events}", stack.env("redis", DATABASE_URL=url)) as api:
                roles = {"api": cpu.api_pids(api), "mariadb": cpu.pid_of(server),
                         "clients": lambda: [os.getpid()]}
                through_api(api.port, [warm[i::clients] for i in range(clients)],
                            plan.range_cap_s, roles)
                replies, size["sequential"] = through_api(api.port, [seq], plan.range_cap_s, roles)
                size["concurrent"] = {**through_api(api.port, groups, plan.range_cap_s, roles)[1],
                                      "clients": clients, "per_client": per_client}
                if number == len(plan.range_events) - 1:
                    size["overload"] = overload(server, api.port, burst)
            size["in_process"], answers = in_process(engine, seq, plan.range_scan_queries,
                                                     plan.range_scan_budget_s)
            api_diff = [w.as_dict() for w, (status, _, body, _), want in zip(seq, replies, answers)
                        if status == 200 and body != want]
            size["sequential"]["differs_from_in_process"] = len(api_diff)
            size["sequential"]["differing_windows"] = api_diff[:10]
            if api_diff:
                log.error("range: %d API answers differ from the buckets in-process: %s",
                          len(api_diff), api_diff[:3])
            size["sqlite"] = sqlite_run(stack, server, events, seq, answers, plan)
            result["sizes"].append(size)
            log.info("range %s events: %s", f"{events:,}", "; ".join(
                f"{label} p50 {pick(size)['p50_ms']} p99 {pick(size)['p99_ms']} ms"
                for label, _, pick in SERIES if "p50_ms" in pick(size)))
    finally:
        engine.dispose()
        with contextlib.suppress(Exception):
            sql(server, None, f"DROP DATABASE IF EXISTS {DATABASE}")
    return result


def targets(result):
    sizes = get(result, "sizes")
    if not sizes:
        return [("range: sequential p99 < 50 ms, 8 clients p99 < 100 ms, 0 errors, 0 mismatches "
                 "(10M events)", "not measured", None)]
    goals, size = result["targets"], sizes[-1]
    at, seq, conc = f"{size['events']:,} events", size["sequential"], size["concurrent"]
    errors = seq["errors"] + conc["errors"]
    missing = (seq["wanted"] - seq["queries"]) + (conc["wanted"] - conc["queries"])
    mismatches = sum(s["in_process"]["mismatches"] + s["sequential"]["differs_from_in_process"]
                     for s in sizes)
    compared = sum(s["in_process"]["compared"] for s in sizes)
    return [verdict(f"range, one query at a time: p99 < {goals['sequential_p99_ms']} ms ({at})",
                    seq["p99_ms"], goals["sequential_p99_ms"], "lower", " ms", "{:.1f}"),
            verdict(f"range, {conc['clients']} concurrent clients: p99 < "
                    f"{goals['concurrent_p99_ms']} ms ({at})",
                    conc["p99_ms"], goals["concurrent_p99_ms"], "lower", " ms", "{:.1f}"),
            (f"range: 0 errors, one at a time and concurrent ({at})",
             f"{errors} errors in {seq['queries'] + conc['queries']} queries"
             + (f", {missing} not asked within the time bound" if missing else ""),
             errors == 0 and missing == 0),
            ("range: 0 mismatches, buckets vs the old scan and API vs in-process (every size)",
             f"{mismatches} in {compared} windows compared", mismatches == 0 and compared > 0)]


def render(r, table):
    title, sizes = "## /dashboard/range: buckets vs the old scan vs SQLite", r["sizes"]
    if not sizes:
        return [title, "", "No store was measured."]

    def row(at, what, part, errors="–", note=""):
        return (at, what, part["queries"], n(part["p50_ms"], 1), n(part["p99_ms"], 1),
                n(part["max_ms"], 1), errors, note)

    def api(at, what, part):
        c = part["cpu_cores"]
        return row(at, what, part, part["errors"], f"{part['queries_per_s']} queries/s; cores: "
                   f"API {c['api']:.2f}, MariaDB {c['mariadb']:.2f}, clients {c['clients']:.2f}, "
                   f"other tenants {c['others']:.2f}")

    def bounded(part):
        return "all windows" if part["complete"] else (
            f"first {part['queries'] + part.get('timeouts', 0)} of {part['wanted']} windows "
            f"({part['budget_s']} s budget)")

    preloads, rows, checks = [], [], []
    for s in sizes:
        p, at, seq, conc, inp, q = (s["preload"], f"{s['events']:,}", s["sequential"],
                                    s["concurrent"], s["in_process"], s["sqlite"])
        preloads.append((at, f"+{p['added']:,}", p["generate_s"], p["rebuild_s"], p["total_s"],
                         " / ".join(n(p["buckets"].get(span)) for span in SPANS),
                         n(p["table_mib"].get("events"), 1),
                         n(p["table_mib"].get("range_buckets"), 1)))
        rows += [api(at, "buckets, API, one at a time", seq),
                 api(at, f"buckets, API, {conc['clients']} clients × {conc['per_client']}", conc),
                 row(at, "buckets, in-process (range_buckets.summarize)", inp["buckets"]),
                 row(at, "old scan, in-process (event_store.scan_summary)", inp["scan"],
                     f"{inp['scan']['timeouts']} stopped", bounded(inp["scan"])),
                 (at, "SQLite, in-process", "–", "–", "–", "–", "–", q["skipped"])
                 if "skipped" in q else
                 row(at, "SQLite, in-process (SQLiteInterface.dashboard_range)", q, "–",
                     bounded(q) + f"; copied in {q['copy_s']} s")]
        checks.append(f"- {at} events: buckets vs old scan **{inp['mismatches']} mismatches** in "
                      f"{inp['compared']} windows; API vs in-process buckets "
                      f"{seq['differs_from_in_process']} differences in {seq['queries']} answers"
                      + ("" if "skipped" in q else f"; SQLite vs buckets "
                         f"{q['differs_from_buckets']} differences in {q['queries']}"))
    lines = [title, "",
             f"Stores of {', '.join(format(s['events'], ',') for s in sizes)} events over 30 days "
             f"({r['from']} to {r['to']} UTC), made inside MariaDB (benchmarks/range_store.py).",
             "", *table(("store", "added", "generate s", "rebuild s", "total s",
                         "buckets 1 s / 1 min / 1 h / 1 day", "og.events MiB",
                         "range_buckets MiB"), preloads), "",
             f"{r['windows']['distinct']:,} distinct windows: "
             + ", ".join(f"{k} {v}" for k, v in sorted(r["windows"]["kinds"].items())) + ".", "",
             *table(("store", "what", "queries", "p50 ms", "p99 ms", "max ms", "errors", "note"),
                    rows), "", "### Targets", "", *targets_table(targets(r)), "",
             "### Correctness", "", *checks]
    if o := sizes[-1].get("overload"):
        lines += ["", f"### Overload: {o['clients']} clients, one distinct window each, at once "
                  f"({sizes[-1]['events']:,} events)", "",
                  f"Answers: {o['statuses']} (200: {o['ok']}, 503: {o['unavailable_503']}, "
                  f"other: {o['other']}); the last {o['burst_s']} s after the burst started; "
                  f"latency p50 {n(o['p50_ms'], 1)} ms, p99 {n(o['p99_ms'], 1)} ms, max "
                  f"{n(o['max_ms'], 1)} ms. At most **{o['max_running_queries']}** queries running "
                  "in MariaDB at once; " + (f"some still running **{o['running_after_burst_s']} s**"
                                            " after it." if o["running_after_burst_s"] else
                                            "none seen running after the last answer.")]
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
    for label, color, pick in SERIES:
        points = [(s["events"], pick(s)) for s in sizes if pick(s).get("p50_ms") is not None]
        for key, style in (("p50_ms", "-o"), ("p99_ms", "--s")):
            axes[0].plot([e for e, _ in points], [f[key] for _, f in points], style, color=color,
                         label=f"{label} {key[:3]}")
    for key in ("sequential_p99_ms", "concurrent_p99_ms"):
        axes[0].axhline(r["targets"][key], color="#555555", linestyle=":", linewidth=0.8)
    axes[0].set(xscale="log", yscale="log", xlabel="events stored (30 uneven days)",
                ylabel="ms per query",
                title="Range dashboard: buckets vs old scan vs SQLite (same windows)")
    axes[0].legend(fontsize=7, ncol=2)
    if overload:
        axes[1].step(*zip(*overload["samples"]), where="post")
        axes[1].axvline(overload["burst_s"], color="#d62728", linestyle=":")
        axes[1].set(xlabel="seconds from the burst (red: its last answer)",
                    ylabel="queries of og running in MariaDB",
                    title=f"Overload: {overload['clients']} distinct windows at once, "
                          f"{sizes[-1]['events']:,} events")
    return plots.save(figure, out, "range")
