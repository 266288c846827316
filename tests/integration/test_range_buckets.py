"""/dashboard/range from the range buckets: exact for every kind of window, and exact
when events are delivered more than once (a crash between COMMIT and XACK, a reclaim,
two workers writing the same entries), on upgrade, rebuild and past events; a query the
API gives up on stops in MariaDB too.

Every comparison is with brute force over og.events (tests/range_oracle.py).
"""
import random
import threading
import time
import uuid as uuidlib
from datetime import datetime, timedelta
from string import ascii_lowercase
from urllib.parse import quote

import pytest

from core import event_store, keys, range_buckets, timestamps
from core.store.codec import Rows
from core.store.gateway import Store
from ingest.worker import Worker
from ingest.writer import DatabaseUnavailable, EventWriter
from server import validation
from tests.range_oracle import assert_buckets_exact, brute_range
from tests.workers import STREAM, drain, group_state, run_ingest, wait_drained

DAY0 = datetime(2024, 2, 27)
"""Histories span a month end and a leap day."""
SECOND = 1_000_000


# --- histories and windows -------------------------------------------------------------


def uneven_history(seed, conversations, days=3):
    """og.events rows (as core/store/codec.py makes them) of an uneven history: busy hours,
    bursts on exact second/minute/hour/day boundaries and one microsecond beside them, a
    bursty symbol, followups that come seconds to hours after their /initial."""
    rng = random.Random(seed)
    rows, texts = [], Rows()
    start = timestamps.to_micros(DAY0)
    for index in range(conversations):
        day = rng.randrange(days)
        kind = rng.random()
        if kind < 0.45:  # a busy hour each day, 09:00-10:00
            offset = (9 * 3600 + rng.random() * 3600) * SECOND
        elif kind < 0.65:  # on a boundary, or a microsecond beside it
            unit = rng.choice((1, 60, 3600, 86400)) * SECOND
            offset = rng.randrange(86400 * SECOND) // unit * unit + rng.choice((-1, 0, 0, 1))
        elif kind < 0.75:  # a burst within one second
            offset = (15 * 3600 + 30 * 60 + 7) * SECOND + rng.randrange(SECOND)
        else:
            offset = rng.randrange(86400 * SECOND)
        cts = start + day * 86400 * SECOND + int(offset)
        symbol = "e" if rng.random() < 0.3 else rng.choice(ascii_lowercase)
        guess = str(rng.randrange(2))
        conversation = str(uuidlib.UUID(int=rng.getrandbits(128), version=4))
        fields = {"kind": "initial", "uuid": conversation, "symbol": symbol, "guess": guess,
                  "ts": str(cts), "cts": str(cts)}
        rows.append(texts.row(0, f"{cts // 1000}-{index * 2}", fields))
        if rng.random() < 0.4:
            later = cts + rng.choice((rng.randrange(SECOND), rng.randrange(3600 * SECOND)))
            rows.append(texts.row(0, f"{later // 1000}-{index * 2 + 1}",
                                  {**fields, "kind": "followup", "ts": str(later)}))
    rng.shuffle(rows)  # entries arrive out of time order (partitions, reclaims)
    return rows


def _text(moment, style):
    if style == "date":
        return moment.strftime("%Y-%m-%d")
    return timestamps.format_datetime(moment).replace(" ", "T" if style == "T" else " ")


def windows(rows, seed, count=120, day0=DAY0):
    """[(lower text, upper text)] of every kind: date-only, multi-day, microsecond bounds,
    bounds exactly on an event and a microsecond beside it, sub-second, crossing
    minute/hour/day boundaries, before and after all data, the whole history."""
    rng = random.Random(seed)
    times = sorted(datetime.strptime(row[7], timestamps.FORMAT) for row in rows)
    first, last = times[0], times[-1]
    micro = timedelta(microseconds=1)
    out = [("2000-01-01", "2100-12-31"),  # the whole history
           ("2000-01-01", _text(first - micro, "us")),  # just before all data
           (_text(last + micro, "us"), "2100-01-01"),  # just after all data
           (_text(first, "us"), _text(last, "us"))]  # bounds exactly on the extremes
    for day in range(-1, 4):
        date = _text(day0 + timedelta(days=day), "date")
        out.append((date, date))
    out.append((_text(day0, "date"), _text(day0 + timedelta(days=1), "date")))
    while len(out) < count:
        kind = rng.randrange(6)
        anchor = rng.choice(times)
        if kind == 0:  # exactly on an event, or a microsecond beside it, on either side
            low = anchor + micro * rng.choice((-1, 0, 1))
            high = rng.choice(times) + micro * rng.choice((-1, 0, 1))
        elif kind == 1:  # sub-second
            low = anchor - timedelta(microseconds=rng.randrange(SECOND))
            high = low + timedelta(microseconds=rng.randrange(SECOND))
        elif kind == 2:  # across a minute, hour or day boundary
            unit = rng.choice((60, 3600, 86400))
            boundary = day0 + timedelta(seconds=rng.randrange(4 * 86400) // unit * unit)
            low = boundary - timedelta(microseconds=rng.randrange(1, 2 * unit * SECOND))
            high = boundary + timedelta(microseconds=rng.randrange(1, 2 * unit * SECOND))
        elif kind == 3:  # microsecond bounds anywhere
            low = first + timedelta(microseconds=rng.randrange(int((last - first) / micro)))
            high = low + timedelta(microseconds=rng.randrange(2 * 86400 * SECOND))
        elif kind == 4:  # whole seconds
            low = anchor.replace(microsecond=0)
            high = low + timedelta(seconds=rng.randrange(1, 7200)) - micro
        else:  # multi-day, date-only
            low = day0 + timedelta(days=rng.randrange(-1, 3))
            out.append((_text(low, "date"), _text(low + timedelta(days=rng.randrange(1, 3)), "date")))
            continue
        low, high = min(low, high), max(low, high)
        out.append((_text(low, rng.choice(("us", "T"))), _text(high, "us")))
    return out


def write_all(writer, rows, batch=400):
    for start in range(0, len(rows), batch):
        added, rejected = writer.write(rows[start:start + batch])
        assert not rejected


def assert_windows_exact(engine, api, pairs):
    checked = 0
    for lower, upper in pairs:
        low, high = validation.parse_range(lower, upper)
        response = api.client.get(f"/dashboard/range/{quote(lower)}/{quote(upper)}")
        assert response.status_code == 200, (lower, upper, response.get_json())
        assert response.get_json() == brute_range(engine, low, high), (lower, upper)
        checked += bool(response.get_json())
    assert checked > len(pairs) // 2, "most windows should hold data"


@pytest.fixture
def writer(database):
    event_store.create_tables(database)
    return EventWriter(database)


# --- exact for every kind of window ------------------------------------------------------


def test_every_kind_of_window_equals_brute_force(make_app, redis, database, writer):
    rows = uneven_history(1, 6000)
    write_all(writer, rows)
    assert assert_buckets_exact(database) > 1000
    api = make_app("redis")
    assert_windows_exact(database, api, windows(rows, seed=2, count=250))


def test_a_batch_written_again_in_other_splits_adds_nothing(make_app, redis, database, writer):
    rows = uneven_history(3, 3000)
    write_all(writer, rows, batch=500)
    whole = (datetime(2000, 1, 1), datetime(2100, 1, 1))
    before = brute_range(database, *whole)
    # Redelivered: the same rows again, in other batch splits and orders, half of them
    # mixed with rows never written before.
    fresh = uneven_history(4, 500)
    again = rows[::2] + fresh
    random.Random(5).shuffle(again)
    added = sum(writer.write(again[i:i + 333])[0] for i in range(0, len(again), 333))
    assert added == len(fresh)
    assert writer.write(rows) == (0, [])
    assert_buckets_exact(database)
    after = brute_range(database, *whole)
    assert sum(r["count"] for r in after) == sum(r["count"] for r in before) + sum(
        r[3] == "initial" for r in fresh)
    assert_windows_exact(database, make_app("redis"), windows(rows + fresh, seed=6, count=60))


def test_two_writers_writing_the_same_entries_at_once_count_each_once(database, writer):
    rows = uneven_history(7, 4000)
    engines = [event_store.build_engine(database.url) for _ in range(2)]
    writers = [EventWriter(engine) for engine in engines]
    retries, failures = [], []
    barrier = threading.Barrier(2)

    def write(index):
        # Both write everything, in their own splits and orders, starting together.
        mine = list(rows)
        random.Random(index).shuffle(mine)
        try:
            barrier.wait(10)
            for start in range(0, len(mine), 250):
                while True:
                    try:
                        writers[index].write(mine[start:start + 250])
                        break
                    except DatabaseUnavailable:  # a deadlock between the two: retried
                        retries.append(index)
        except BaseException as error:  # noqa: BLE001 - reported in the test's thread
            failures.append(error)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    for engine in engines:
        engine.dispose()
    assert not failures, failures
    with database.connect() as connection:
        assert connection.exec_driver_sql("SELECT COUNT(*) FROM events").scalar() == len(rows)
    assert_buckets_exact(database)


# --- exact under the worker's at-least-once delivery --------------------------------------


def worker_on(redis_server, database, name, writer=None, claim_idle_ms=60_000, cls=Worker):
    return cls(Store.connect(redis_server.url, 1, timeout=10, encoding_errors="surrogateescape"),
               writer or EventWriter(event_store.build_engine(database.url)), name=name,
               partitions=1, batch_size=500, batch_ms=10, claim_idle_ms=claim_idle_ms,
               max_deliveries=5)


def fill_stream(redis_client, rows):
    """The rows as stream entries in the format the API's scripts write."""
    pipe = redis_client.pipeline(transaction=False)
    for row in rows:
        _, _, uuid, kind, symbol, guess, ts, cts = row
        pipe.xadd(STREAM, {"kind": kind, "uuid": uuid, "symbol": symbol, "guess": str(guess),
                           "ts": str(timestamps.to_micros(datetime.strptime(ts, timestamps.FORMAT))),
                           "cts": str(timestamps.to_micros(datetime.strptime(cts, timestamps.FORMAT)))})
    pipe.execute()


def run_burst(worker, timeout=60):
    thread = threading.Thread(target=worker.run, kwargs={"burst": True}, daemon=True)
    thread.start()
    return thread


class CrashBeforeAck(Worker):
    """Dies between COMMIT and XACK: the batch is in MariaDB and still pending in Redis."""

    def _ack(self, done):
        raise RuntimeError("crash between COMMIT and XACK")


def test_a_crash_between_commit_and_ack_counts_nothing_twice(redis, redis_server, database, writer):
    rows = uneven_history(8, 1500)
    fill_stream(redis, rows)
    crashed = worker_on(redis_server, database, "crashed", cls=CrashBeforeAck)
    run_burst(crashed).join(60)
    assert crashed.written > 0  # committed...
    pending = redis.xpending(STREAM, keys.GROUP)["pending"]
    assert pending > 0  # ...and never acknowledged
    with database.connect() as connection:
        stored = connection.exec_driver_sql("SELECT COUNT(*) FROM events").scalar()
    assert stored == crashed.written

    successor = worker_on(redis_server, database, "successor", claim_idle_ms=1)
    run_burst(successor).join(60)
    assert successor.written == len(rows) - stored  # the redelivered batch added nothing
    wait_drained(redis)
    assert_buckets_exact(database)
    with database.connect() as connection:
        assert connection.exec_driver_sql("SELECT COUNT(*) FROM events").scalar() == len(rows)


class SlowWriter(EventWriter):
    """A worker that is slow, not dead: its batch is reclaimed by another while it waits."""

    def __init__(self, engine, delay_s):
        super().__init__(engine)
        self.delay_s = delay_s
        self.added = 0

    def write(self, rows, prepared=None):
        time.sleep(self.delay_s)
        added, rejected = super().write(rows, prepared)
        self.added += added
        return added, rejected


def test_a_slow_worker_and_the_one_that_reclaimed_its_batch_count_it_once(
        redis, redis_server, database, writer):
    rows = uneven_history(9, 300)
    fill_stream(redis, rows)
    slow_writer = SlowWriter(event_store.build_engine(database.url), delay_s=2.0)
    slow = worker_on(redis_server, database, "slow", writer=slow_writer)
    slow_thread = run_burst(slow)
    deadline = time.monotonic() + 10
    while group_state(redis)[2] == 0:  # until the slow one holds the batch
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.3)
    reclaimer = worker_on(redis_server, database, "reclaimer", claim_idle_ms=200)
    run_burst(reclaimer).join(60)
    slow_thread.join(60)
    # Both wrote the whole batch; the reclaimer's insert came first, the slow one's
    # added nothing.
    assert reclaimer.written == len(rows) and slow_writer.added == 0
    wait_drained(redis)
    assert_buckets_exact(database)


# --- stores made before the buckets, rebuilds, past events -----------------------------


def old_store(database, rows):
    """og.events as the version before the buckets left it: full, no other table."""
    event_store.events.create(database)
    with database.begin() as connection:
        for start in range(0, len(rows), 1000):
            connection.exec_driver_sql(
                "INSERT INTO events (stream, event_id, uuid, kind, symbol, guess, ts,"
                " conversation_ts) VALUES " + ",".join(
                    "(%d,'%s','%s','%s','%s',%d,'%s','%s')" % row for row in rows[start:start + 1000]))


def test_an_old_store_is_upgraded_by_ingest_rebuild(make_app, redis, redis_server, database,
                                                     mariadb_server):
    rows = uneven_history(10, 3000)
    old_store(database, rows)
    api = make_app("redis")
    response = api.client.get("/dashboard/range/2024-02-27/2024-03-01")
    assert response.status_code == 503
    assert "python -m ingest rebuild" in response.get_json()["error"]  # says what to do

    result = run_ingest("rebuild", REDIS_URL=redis_server.url, DATABASE_URL=mariadb_server.url)
    assert result.returncode == 0, result.stderr
    assert_buckets_exact(database)
    assert_windows_exact(database, api, windows(rows, seed=11, count=80))


def test_an_old_store_is_upgraded_when_a_worker_starts(make_app, redis, database):
    rows = uneven_history(12, 2000)
    old_store(database, rows)
    api = make_app("redis")
    drain()  # the worker's start builds the buckets before it writes anything
    assert_buckets_exact(database)
    assert_windows_exact(database, api, windows(rows, seed=13, count=40))


def test_past_events_filled_into_the_stream_land_in_their_buckets(make_app, redis, database):
    # The stream format of today (kind uuid symbol guess ts cts, 16-digit epoch
    # microseconds) with times years back, as a replay or a backfill would write them.
    rows = [(0, f"1-{i}", *row[2:]) for i, row in enumerate(uneven_history(14, 1500))]
    years_back = timedelta(days=5 * 365)
    past = [(p, i, u, k, s, g,
             timestamps.format_datetime(datetime.strptime(ts, timestamps.FORMAT) - years_back),
             timestamps.format_datetime(datetime.strptime(cts, timestamps.FORMAT) - years_back))
            for p, i, u, k, s, g, ts, cts in rows]
    fill_stream(redis, past)
    api = make_app("redis")
    drain()
    assert_buckets_exact(database)
    assert_windows_exact(database, api, windows(past, seed=15, count=60, day0=DAY0 - years_back))


def test_rebuild_while_writers_write_stays_exact(database, writer):
    rows = uneven_history(16, 6000)
    write_all(writer, rows[:2000])
    stop, failures = threading.Event(), []
    concurrent = EventWriter(event_store.build_engine(database.url))

    def keep_writing():
        try:
            for start in range(2000, len(rows), 100):
                while not stop.is_set():
                    try:
                        concurrent.write(rows[start:start + 100])
                        break
                    except DatabaseUnavailable:
                        time.sleep(0.01)
        except BaseException as error:  # noqa: BLE001
            failures.append(error)

    thread = threading.Thread(target=keep_writing)
    thread.start()
    for _ in range(3):
        range_buckets.rebuild(database)
    thread.join(60)
    stop.set()
    concurrent.engine.dispose()
    assert not failures, failures
    with database.connect() as connection:
        assert connection.exec_driver_sql("SELECT COUNT(*) FROM events").scalar() == len(rows)
    assert_buckets_exact(database)


def test_buckets_being_built_answer_503_never_a_partial_count(make_app, redis, database, writer):
    rows = uneven_history(17, 500)
    write_all(writer, rows)
    api = make_app("redis")
    assert api.client.get("/dashboard/range/2024-02-27/2024-03-01").status_code == 200
    # An interrupted rebuild: readiness withdrawn, buckets half gone.
    with database.begin() as connection:
        connection.exec_driver_sql("DELETE FROM migrations")
        connection.exec_driver_sql("DELETE FROM range_buckets WHERE span_s = 86400")
    response = api.client.get("/dashboard/range/2024-02-27/2024-03-01")
    assert response.status_code == 503 and "being built" in response.get_json()["error"]
    assert range_buckets.ensure_built(database)  # what the next worker start does
    assert_buckets_exact(database)
    assert_windows_exact(database, api, windows(rows, seed=18, count=20))


# --- overload: a query the API gives up on stops in MariaDB --------------------------------


def og_queries(mariadb_server):
    connection = mariadb_server.connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT COUNT(*), SUM(COMMAND = 'Query') FROM information_schema.PROCESSLIST"
                           " WHERE USER = 'og'")
            connections, queries = cursor.fetchone()
            return int(connections), int(queries or 0)
    finally:
        connection.close()


def test_range_queries_given_up_on_stop_in_mariadb_and_never_overrun_the_pool(
        make_app, redis, database, writer, mariadb_server):
    write_all(writer, uneven_history(19, 300))
    api = make_app("redis", OG_DATABASE_TIMEOUT=0.5)
    database.dispose()  # the fixture's own connections are not the API's
    locker = mariadb_server.connect(database="og")
    statuses, peak = [], [0, 0]
    try:
        with locker.cursor() as cursor:
            cursor.execute("LOCK TABLES range_buckets WRITE")  # every range query now waits

        def ask(index):
            client = api.app.test_client()
            day = DAY0 + timedelta(seconds=index)  # distinct windows: no shared execution
            response = client.get(f"/dashboard/range/{quote(_text(day, 'us'))}/2024-03-01")
            statuses.append((response.status_code, response.get_json()["error"]
                             if response.status_code != 200 else None))

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(40)]
        before, _ = og_queries(mariadb_server)  # idle connections of earlier tests' engines
        started = time.monotonic()
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            connections, _ = og_queries(mariadb_server)
            peak[0] = max(peak[0], connections)
            time.sleep(0.02)
            assert time.monotonic() - started < 30
        time.sleep(0.3)
        _, still_running = og_queries(mariadb_server)
    finally:
        locker.close()
    assert {status for status, _ in statuses} == {503}, statuses[:3]
    stopped = [error for _, error in statuses if error.startswith("range query stopped")]
    queued = [error for _, error in statuses if "connections of this API process" in error]
    # 16 ran and were stopped by MariaDB at the limit; the rest never got a connection.
    assert len(stopped) + len(queued) == len(statuses) and stopped, set(statuses)
    assert all("OG_DATABASE_TIMEOUT" in error for _, error in statuses), statuses[:3]
    assert still_running == 0  # the abandoned queries were stopped by MariaDB itself
    assert peak[0] - before <= 16  # the API process's pool: 16, no overflow
