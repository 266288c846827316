"""The redis backend against the sqlite reference and against what the drain stored.

The app runs in-process (make_app); the ingest worker is drained in-process in burst
mode (tests.workers.drain). Each test checks outcomes: the dashboards, the rows in
og.events, what is left in the stream.
"""
import os
import random
import signal
import time
from datetime import timedelta
from string import ascii_lowercase

import pytest
import sqlalchemy

from core.store.codec import Rows
from ingest.writer import EventWriter
from core import keys, timestamps
from tests.dashboards import bound, parse_ts, range_dashboard
from tests.conversations import converse
from tests.range_oracle import assert_buckets_exact
from tests.workers import (STATS, STREAM, assert_stored_exactly, drain, group_state,
                           new_uuid, run_ingest, stored_events, stored_rows,
                           symbol_dashboards)

EVERYTHING = "/dashboard/range/1970-01-01/9999-12-31"
ANSWER_BOUND_S = 5.0
"""A request to a store that is down or hung must be answered (503) within this."""


def post(api, path, body):
    return api.post(path, body)


def get(api, path):
    return api.get(path)


def assert_error(answer, status):
    code, body = answer
    assert code == status, body
    assert isinstance(body, dict) and list(body) == ["error"] and isinstance(body["error"], str)


def initial_bounds(engine):
    """{symbol: (min ts, max ts)} of the initial rows in og.events, in the API's format."""
    with engine.connect() as connection:
        rows = connection.execute(sqlalchemy.text(
            "SELECT symbol, MIN(ts), MAX(ts) FROM events WHERE kind = 'initial' GROUP BY symbol"))
        return {s: (timestamps.format_datetime(lo), timestamps.format_datetime(hi))
                for s, lo, hi in rows}


def stored_conversations(engine):
    """[(symbol, /initial ts, followed up?)] from og.events, for tests.dashboards."""
    rows = stored_rows(engine)
    followed = {r["uuid"] for r in rows if r["kind"] == "followup"}
    return [(r["symbol"], timestamps.format_datetime(r["ts"]), r["uuid"] in followed)
            for r in rows if r["kind"] == "initial"]


# --- issue 3: the same conversations through the reference and the product ------------


def seeded_plan(rng, conversations):
    """Requests and the status docs/API.md expects of each, from a seeded rng. Followups are
    decided by the rng alone, never by the server's guess, so both backends get the same."""
    steps, started, followed = [], [], set()
    for _ in range(conversations):
        conversation, symbol = new_uuid(), rng.choice(ascii_lowercase[:-1])  # 'z' stays empty
        steps.append(("/initial", {"uuid": conversation, "symbol": symbol}, 200))
        started.append(conversation)
        for _ in range(rng.choice([0, 0, 1, 1, 2])):
            earlier = rng.choice(started)
            steps.append(("/followup", {"uuid": earlier}, 409 if earlier in followed else 200))
            followed.add(earlier)
        if rng.random() < 0.05:
            steps.append(("/followup", {"uuid": new_uuid()}, 404))
        if rng.random() < 0.05:
            steps.append(("/initial", {"uuid": rng.choice(started).upper(), "symbol": "b"}, 409))
    return steps


def test_redis_and_sqlite_agree_on_seeded_conversations(make_app, redis, database):
    rng = random.Random(20240306)
    steps = seeded_plan(rng, 250)
    reference = make_app("sqlite", OG_SEED=11)
    product = make_app("redis", OG_SEED=11)
    for path, body, expected in steps:
        assert post(reference, path, body)[0] == expected, (path, body)
        assert post(product, path, body)[0] == expected, (path, body)
    drain()

    conversations = sum(1 for path, _, status in steps if path == "/initial" and status == 200)
    followups = sum(1 for path, _, status in steps if path == "/followup" and status == 200)
    assert 0 < followups < conversations

    # The symbol dashboards agree on everything but the clock each backend read.
    bounds = initial_bounds(database)
    expected_boards = symbol_dashboards(lambda p: get(reference, p))
    boards = symbol_dashboards(lambda p: get(product, p))
    for symbol in ascii_lowercase:
        board, expected = boards[symbol], expected_boards[symbol]
        assert (board["count"], board["followups"]) == (expected["count"], expected["followups"])
        assert (board["earliest"], board["latest"]) == bounds.get(symbol, (None, None)), symbol
    assert boards["z"] == {"count": 0, "symbol": "z", "earliest": None, "latest": None,
                           "followups": 0}
    assert sum(b["count"] for b in boards.values()) == conversations
    assert sum(b["followups"] for b in boards.values()) == followups

    # The range dashboards (og.events after the drain) agree too.
    status, window = get(product, EVERYTHING)
    assert status == 200
    _, expected_window = get(reference, EVERYTHING)
    assert [(r["symbol"], r["count"], r["followups"]) for r in window] == [
        (r["symbol"], r["count"], r["followups"]) for r in expected_window]
    assert {r["symbol"]: (r["earliest"], r["latest"]) for r in window} == bounds


# --- issue 3: one row per accepted event, and redelivery adds none ---------------------


def test_drain_stores_each_accepted_event_once_and_redelivery_adds_no_row(make_app, redis,
                                                                          database):
    api = make_app("redis", OG_INGEST_CLAIM_IDLE_MS=600_000)
    accepted, _ = converse(api, 120, 0.5, random.Random(2))
    entries = redis.xrange(STREAM)
    assert len(entries) == len(accepted)

    # A consumer that takes the oldest entry and never acknowledges it: the stream keeps
    # everything from that entry on, drained or not, so it can be delivered again.
    redis.xgroup_create(STREAM, keys.GROUP, id="0")
    redis.xreadgroup(keys.GROUP, "stalled", {STREAM: ">"}, count=1)
    first = drain()
    assert first.written == len(accepted) - 1
    assert group_state(redis) == (len(accepted), 0, 1)
    written = stored_rows(database)
    assert len(written) == len(accepted) - 1

    # Deliver every entry again, as after a crash between commit and ack.
    redis.xgroup_setid(STREAM, keys.GROUP, id="0")
    second = drain()
    assert second.written == 1  # every entry delivered again, only the stalled one added...
    assert_stored_exactly(database, accepted)  # ...and each stored once
    assert_buckets_exact(database)  # counted once in the range buckets
    after = {(r["stream"], r["event_id"]): r for r in stored_rows(database)}
    assert all(after[(r["stream"], r["event_id"])] == r for r in written)
    # Everything is acknowledged and nothing acknowledged stays in the stream.
    assert group_state(redis) == (0, 0, 0)

    # The same batch written once more through the writer changes nothing either.
    rows = Rows()
    batch = [rows.row(0, entry_id, fields) for entry_id, fields in entries]
    writer = EventWriter(database)
    assert writer.write(batch) == (0, [])
    assert_stored_exactly(database, accepted)
    assert_buckets_exact(database)
    assert {(r["stream"], r["event_id"]) for r in stored_rows(database)} == {
        (0, entry_id) for entry_id, _ in entries}


def test_rows_carry_the_stream_entry_fields(make_app, redis, database):
    api = make_app("redis")
    conversation = new_uuid()
    status, body = post(api, "/initial", {"uuid": conversation.upper(), "symbol": "e"})
    assert status == 200
    assert post(api, "/followup", {"uuid": conversation})[0] == 200
    entries = redis.xrange(STREAM)
    drain()

    initial, followup = stored_rows(database)
    assert [initial["event_id"], followup["event_id"]] == [e for e, _ in entries]
    assert (initial["uuid"], initial["kind"], initial["symbol"]) == (conversation, "initial", "e")
    assert (followup["uuid"], followup["kind"], followup["symbol"]) == (conversation, "followup", "e")
    assert initial["guess"] == followup["guess"] == body["vowel"]
    assert initial["conversation_ts"] == initial["ts"] == followup["conversation_ts"]
    assert followup["ts"] >= initial["ts"]
    board = get(api, "/dashboard/symbol/e")[1]
    assert board["earliest"] == board["latest"] == timestamps.format_datetime(initial["ts"])


# --- issue 3: /dashboard/range is answered from MariaDB ---------------------------------


def test_range_dashboard_shows_events_once_drained(make_app, redis, database):
    api = make_app("redis")
    drain()  # the worker creates og.events
    assert get(api, EVERYTHING) == (200, [])

    rng = random.Random(4)
    first, _ = converse(api, 30, 0.0, rng, symbols="abc")
    assert get(api, EVERYTHING) == (200, [])  # not drained yet
    drain()
    conversations = stored_conversations(database)
    assert get(api, EVERYTHING) == (200, range_dashboard(
        conversations, bound("1970-01-01", False), bound("9999-12-31", True)))

    # A followup of an old conversation, and new conversations: invisible until drained,
    # then the followup counts in its conversation's window, whenever it came.
    old = sorted(c for c, kind in first)[0]
    assert post(api, "/followup", {"uuid": old})[0] == 200
    converse(api, 10, 0.5, rng, symbols="cd")
    before = get(api, EVERYTHING)
    assert before[1] == range_dashboard(conversations, bound("1970-01-01", False),
                                        bound("9999-12-31", True))
    drain()
    conversations = stored_conversations(database)
    assert sum(followed for _, _, followed in conversations) >= 1
    status, window = get(api, EVERYTHING)
    assert status == 200 and window != before[1]
    assert window == range_dashboard(conversations, bound("1970-01-01", False),
                                     bound("9999-12-31", True))


def test_range_dashboard_before_any_drain_is_an_empty_list(make_app, redis, database):
    # A fresh install: the API is up before the ingest worker has created og.events.
    # MariaDB is reachable and holds no event, so the window is empty, not unavailable.
    api = make_app("redis")
    assert post(api, "/initial", {"uuid": new_uuid(), "symbol": "a"})[0] == 200
    assert get(api, EVERYTHING) == (200, [])
    assert get(api, "/dashboard/range/2024-03-05/2024-03-05") == (200, [])


def test_range_dashboard_bounds_on_stored_times(make_app, redis, database):
    api = make_app("redis")
    rng = random.Random(5)
    converse(api, 12, 0.5, rng, symbols="xyz")
    drain()
    conversations = stored_conversations(database)
    stamps = sorted(parse_ts(ts) for _, ts, _ in conversations)
    assert len(set(stamps)) == len(stamps) == 12
    tick = timedelta(microseconds=1)
    day, last_day = stamps[0].strftime("%Y-%m-%d"), stamps[-1].strftime("%Y-%m-%d")
    next_day = (stamps[-1] + timedelta(days=1)).strftime("%Y-%m-%d")

    def text(moment):
        return moment.strftime("%Y-%m-%d %H:%M:%S.%f")

    windows = [
        (day, last_day),                             # date-only: whole days
        (next_day, next_day),                        # a day with nothing
        (text(stamps[0]), text(stamps[0])),          # exactly one conversation
        (text(stamps[3]), text(stamps[8])),          # both edges on conversations
        (text(stamps[3] + tick), text(stamps[8] - tick)),  # just inside: the edges drop out
        (day, text(stamps[5])),                      # mixed forms
        (stamps[2].strftime("%Y-%m-%d %H:%M:%S"), last_day),  # whole seconds
    ]
    for lower, upper in windows:
        expected = range_dashboard(conversations, bound(lower, False), bound(upper, True))
        for separator in ("%20", "T"):
            path = f"/dashboard/range/{lower}/{upper}".replace(" ", separator)
            assert get(api, path) == (200, expected), path
    assert sum(r["count"] for r in range_dashboard(
        conversations, stamps[3], stamps[8])) == 6


def test_range_dashboard_is_503_json_while_mariadb_is_down(make_app, redis, database,
                                                           mariadb_server):
    api = make_app("redis")
    converse(api, 5, 0.0, random.Random(6), symbols="m")
    drain()
    assert get(api, EVERYTHING)[1][0]["count"] == 5
    mariadb_server.stop()
    try:
        started = time.monotonic()
        assert_error(get(api, EVERYTHING), 503)
        assert_error(get(api, "/dashboard/range/2024-01-01/2024-01-02%2010:00:00"), 503)
        assert time.monotonic() - started < ANSWER_BOUND_S, "a range query hung"
        # The hot path does not need MariaDB.
        assert post(api, "/initial", {"uuid": new_uuid(), "symbol": "m"})[0] == 200
        assert get(api, "/dashboard/symbol/m")[1]["count"] == 6
    finally:
        mariadb_server.start()
    status, window = get(api, EVERYTHING)
    assert status == 200 and window[0]["count"] == 5


def test_range_dashboard_is_503_quickly_while_mariadb_hangs(make_app, redis, database,
                                                            mariadb_server):
    # Frozen, not stopped: connections are accepted and nothing is ever answered, as with
    # a stalled disk or a network partition. A request must still not hang.
    api = make_app("redis")
    converse(api, 3, 0.0, random.Random(6), symbols="n")
    drain()
    assert get(api, EVERYTHING)[1][0]["count"] == 3  # a pooled connection to MariaDB
    os.kill(mariadb_server.pid, signal.SIGSTOP)
    try:
        for _ in range(2):
            started = time.monotonic()
            assert_error(get(api, EVERYTHING), 503)
            assert time.monotonic() - started < ANSWER_BOUND_S, "a range query hung"
    finally:
        os.kill(mariadb_server.pid, signal.SIGCONT)
    assert get(api, EVERYTHING)[1][0]["count"] == 3


def test_a_first_request_to_a_hung_redis_is_503_quickly(make_app, redis, redis_server):
    # The API connects on its first request: asking a frozen Redis whether it is a
    # cluster must take one attempt of OG_REDIS_TIMEOUT, not redis-py's ten retries.
    api = make_app("redis", OG_REDIS_TIMEOUT=0.5)
    os.kill(redis_server.pid, signal.SIGSTOP)
    try:
        for _ in range(2):  # the second one after the cached failure has passed
            started = time.monotonic()
            assert_error(post(api, "/initial", {"uuid": new_uuid(), "symbol": "a"}), 503)
            assert time.monotonic() - started < ANSWER_BOUND_S, "a first request hung"
            time.sleep(0.6)
    finally:
        os.kill(redis_server.pid, signal.SIGCONT)
    assert post(api, "/initial", {"uuid": new_uuid(), "symbol": "a"})[0] == 200


# --- issue 4: Redis up but refusing writes ------------------------------------------------


REFUSALS = {
    # min-replicas-to-write without replicas: every write is refused with NOREPLICAS.
    "noreplicas": (("CONFIG", "SET", "min-replicas-to-write", "1"),
                   ("CONFIG", "SET", "min-replicas-to-write", "0")),
    # A primary demoted to a replica (of a loopback port nobody serves): READONLY.
    "readonly": (("REPLICAOF", "127.0.0.1", "1"), ("REPLICAOF", "NO", "ONE")),
}


@pytest.mark.parametrize("refusal", sorted(REFUSALS))
def test_redis_refusing_writes_is_503_and_stores_nothing(make_app, redis, database, refusal):
    api = make_app("redis")
    known = new_uuid()
    assert post(api, "/initial", {"uuid": known, "symbol": "v"})[0] == 200
    before = (redis.xlen(STREAM), redis.hgetall(STATS), redis.dbsize())
    refuse, restore = REFUSALS[refusal]
    redis.execute_command(*refuse)
    try:
        fresh = new_uuid()
        assert_error(post(api, "/initial", {"uuid": fresh, "symbol": "v"}), 503)
        assert_error(post(api, "/followup", {"uuid": known}), 503)
        assert get(api, "/dashboard/symbol/v")[1]["count"] == 1  # reads still work
        assert (redis.xlen(STREAM), redis.hgetall(STATS), redis.dbsize()) == before
    finally:
        redis.execute_command(*restore)
    assert post(api, "/initial", {"uuid": fresh, "symbol": "v"})[0] == 200
    assert post(api, "/followup", {"uuid": known})[0] == 200


# --- issue 4: the backlog high-water mark ----------------------------------------------


def test_writes_over_the_high_water_mark_are_503_and_store_nothing(make_app, redis, database):
    api = make_app("redis", OG_BACKLOG_HIGH_WATER=5)
    started = [new_uuid() for _ in range(5)]
    for conversation in started:
        assert post(api, "/initial", {"uuid": conversation, "symbol": "h"})[0] == 200
    stored_before = (redis.xlen(STREAM), redis.hgetall(STATS), redis.dbsize())
    assert stored_before[0] == 5

    late = new_uuid()
    for path, body in [("/initial", {"uuid": late, "symbol": "h"}),
                       ("/initial", {"uuid": late, "symbol": "k"}),
                       ("/followup", {"uuid": started[0]})]:
        code, answer = post(api, path, body)
        assert_error((code, answer), 503)
        assert "backlog" in answer["error"]
    assert (redis.xlen(STREAM), redis.hgetall(STATS), redis.dbsize()) == stored_before
    board = get(api, "/dashboard/symbol/h")[1]
    assert (board["count"], board["followups"]) == (5, 0)

    drain()
    assert group_state(redis) == (0, 0, 0)
    # The shed uuid was never taken, and the followup can now be made.
    assert post(api, "/initial", {"uuid": late, "symbol": "h"})[0] == 200
    assert post(api, "/followup", {"uuid": started[0]})[0] == 200
    board = get(api, "/dashboard/symbol/h")[1]
    assert (board["count"], board["followups"]) == (6, 1)
    drain()
    assert_stored_exactly(database, {(c, "initial") for c in started + [late]}
                          | {(started[0], "followup")})


# --- issue 4: rebuild ------------------------------------------------------------------


def test_rebuild_after_flushall_restores_dashboards_and_conversations(make_app, redis,
                                                                      database):
    api = make_app("redis")
    rng = random.Random(7)
    accepted, symbol_of = converse(api, 150, 0.4, rng)
    drain()
    before = symbol_dashboards(lambda p: get(api, p))
    assert sum(b["count"] for b in before.values()) == 150

    redis.flushall()
    assert get(api, "/dashboard/symbol/a")[1]["count"] == 0
    result = run_ingest("rebuild", REDIS_URL=api.env["REDIS_URL"],
                        DATABASE_URL=api.env["DATABASE_URL"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert symbol_dashboards(lambda p: get(api, p)) == before

    # The conversations are back too: an open one can follow up, the others conflict.
    open_ = sorted(c for c, kind in accepted if (c, "followup") not in accepted)
    followed = sorted(c for c, kind in accepted if kind == "followup")
    assert open_ and followed
    assert post(api, "/followup", {"uuid": open_[0]})[0] == 200
    assert_error(post(api, "/followup", {"uuid": followed[0]}), 409)
    assert_error(post(api, "/initial", {"uuid": open_[1], "symbol": "a"}), 409)
    assert_error(post(api, "/initial", {"uuid": followed[0], "symbol": symbol_of[followed[0]]}), 409)
    symbol = symbol_of[open_[0]]
    assert get(api, f"/dashboard/symbol/{symbol}")[1]["followups"] == before[symbol]["followups"] + 1

    # The followup after the rebuild is stored under its conversation's symbol and time.
    drain()
    assert_stored_exactly(database, accepted | {(open_[0], "followup")})
    rows = [r for r in stored_rows(database) if r["uuid"] == open_[0]]
    initial, followup = sorted(rows, key=lambda r: r["kind"] != "initial")
    assert (followup["symbol"], followup["guess"], followup["conversation_ts"]) == (
        initial["symbol"], initial["guess"], initial["ts"])


def test_rebuild_counts_undrained_events_when_only_the_aggregates_are_lost(make_app, redis,
                                                                          database):
    api = make_app("redis")
    rng = random.Random(8)
    drained, _ = converse(api, 60, 0.5, rng, symbols="pqr")
    drain()
    undrained, _ = converse(api, 40, 0.5, rng, symbols="qrs")
    # Followups of drained conversations, still in the stream.
    late = sorted(c for c, kind in drained if (c, "followup") not in drained)[:5]
    for conversation in late:
        assert post(api, "/followup", {"uuid": conversation})[0] == 200
    before = symbol_dashboards(lambda p: get(api, p))

    redis.delete(STATS)
    result = run_ingest("rebuild", REDIS_URL=api.env["REDIS_URL"],
                        DATABASE_URL=api.env["DATABASE_URL"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert symbol_dashboards(lambda p: get(api, p)) == before
    drain()
    assert_stored_exactly(database, drained | undrained | {(c, "followup") for c in late})
    assert len(stored_events(database)) == sum(b["count"] + b["followups"] for b in before.values())


def test_rebuild_ignores_malformed_entries_left_in_the_stream(make_app, redis, database):
    # Entries the worker has not dead-lettered yet are undrained too; rebuild must not
    # count them (the API never did) nor stop on them.
    api = make_app("redis")
    converse(api, 20, 0.5, random.Random(9), symbols="tu")
    drain()
    undrained, _ = converse(api, 10, 0.5, random.Random(10), symbols="tu")
    ts = redis.xrange(STREAM)[-1][1]["ts"]
    for poison in [{"kind": "initial"}, {"kind": "initial", "uuid": new_uuid(), "symbol": "t",
                                         "guess": "1", "ts": "yesterday", "cts": ts},
                   {"kind": "initial", "uuid": new_uuid(), "symbol": "ab", "guess": "1",
                    "ts": ts, "cts": ts}]:
        redis.xadd(STREAM, poison)
    before = symbol_dashboards(lambda p: get(api, p))

    redis.delete(STATS)
    result = run_ingest("rebuild", REDIS_URL=api.env["REDIS_URL"],
                        DATABASE_URL=api.env["DATABASE_URL"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert symbol_dashboards(lambda p: get(api, p)) == before
    assert not [field for field in redis.hkeys(STATS) if not field[0] in ascii_lowercase
                or field[1] != ":"]


def test_after_a_rebuild_conversations_are_judged_from_og_events(make_app, redis, database):
    # The rebuild restores no conversation key (it would lengthen its fence by one write per
    # conversation of the window): a followup or a repeated uuid finds og.events instead.
    conversation_ttl = 3600
    api = make_app("redis", OG_CONVERSATION_TTL=conversation_ttl)
    old, recent, followed = new_uuid(), new_uuid(), new_uuid()
    for conversation in (old, recent, followed):
        assert post(api, "/initial", {"uuid": conversation, "symbol": "w"})[0] == 200
    assert post(api, "/followup", {"uuid": followed})[0] == 200
    drain()
    with database.begin() as connection:  # one conversation older than the window
        connection.execute(sqlalchemy.text(
            "UPDATE events SET ts = ts - INTERVAL 2 HOUR,"
            " conversation_ts = conversation_ts - INTERVAL 2 HOUR WHERE uuid = :u"), {"u": old})
    redis.flushall()
    result = run_ingest("rebuild", REDIS_URL=api.env["REDIS_URL"],
                        DATABASE_URL=api.env["DATABASE_URL"],
                        OG_CONVERSATION_TTL=conversation_ttl)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not redis.keys(keys.conversation(0, "*"))
    assert_error(post(api, "/followup", {"uuid": followed}), 409)
    for conversation in (old, recent):
        assert post(api, "/followup", {"uuid": conversation})[0] == 200
        assert redis.ttl(keys.conversation(0, conversation)) > conversation_ttl - 60
        assert_error(post(api, "/followup", {"uuid": conversation}), 409)
        assert_error(post(api, "/initial", {"uuid": conversation, "symbol": "w"}), 409)
    assert get(api, "/dashboard/symbol/w")[1]["followups"] == 3
