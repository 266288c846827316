"""Conversations of any age (issue 11): a followup after the conversation's window is
answered from og.events, once; the common path never reads MariaDB."""
import json
import threading
import time

from core import event_store, keys, seen
from server.data_interface import Conflict
from tests.range_oracle import assert_buckets_exact
from tests.workers import drain, new_uuid, run_ingest, stored_rows

WINDOW_S = 1
"""OG_CONVERSATION_TTL of these tests: conversations leave the window while they run."""


def raw_value(redis_server, key):
    client = redis_server.client(decode_responses=False)
    try:
        return client.get(key) or b""
    finally:
        client.close()


def age_out(redis, *conversations):
    """Wait until the conversations' keys have expired: they are out of the window."""
    deadline = time.monotonic() + 5
    while any(redis.exists(keys.conversation(0, c)) for c in conversations):
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_a_followup_after_the_window_is_accepted_once_under_its_conversation(
        make_app, redis, database):
    api = make_app("redis", OG_CONVERSATION_TTL=WINDOW_S)
    old, followed, never = new_uuid(), new_uuid(), new_uuid()
    assert api.post("/initial", {"uuid": old, "symbol": "k"})[0] == 200
    assert api.post("/initial", {"uuid": followed, "symbol": "k"})[0] == 200
    assert api.post("/followup", {"uuid": followed})[0] == 200
    drain()
    age_out(redis, old, followed)
    before = api.get("/dashboard/symbol/k")[1]
    assert (before["count"], before["followups"]) == (2, 1)

    assert api.post("/followup", {"uuid": old}) == (200, {"uuid": old, "followup": True})
    status, answer = api.post("/followup", {"uuid": old})
    assert status == 409 and "already followed up" in answer["error"]
    status, answer = api.post("/followup", {"uuid": followed})  # followed up inside its window
    assert status == 409 and "already followed up" in answer["error"]
    assert api.post("/followup", {"uuid": never})[0] == 404
    after = api.get("/dashboard/symbol/k")[1]
    assert (after["count"], after["followups"]) == (2, 2)
    assert (after["earliest"], after["latest"]) == (before["earliest"], before["latest"])

    # Stored under the conversation's symbol, guess and time, counted in its range bucket.
    drain()
    rows = [r for r in stored_rows(database) if r["uuid"] == old]
    initial, followup = sorted(rows, key=lambda r: r["kind"] != "initial")
    assert (followup["kind"], followup["symbol"], followup["guess"], followup["conversation_ts"]) == (
        "followup", initial["symbol"], initial["guess"], initial["ts"])
    assert_buckets_exact(database)
    # Once the restored key has expired too, og.events itself says "followed up".
    age_out(redis, old)
    status, answer = api.post("/followup", {"uuid": old})
    assert status == 409 and "already followed up" in answer["error"]
    assert len([r for r in stored_rows(database) if r["uuid"] == old]) == 2


def test_concurrent_followups_of_an_old_conversation_accept_exactly_one(
        make_app, redis, database):
    api = make_app("redis", OG_CONVERSATION_TTL=WINDOW_S)
    conversations = [new_uuid() for _ in range(5)]
    for conversation in conversations:
        assert api.post("/initial", {"uuid": conversation, "symbol": "m"})[0] == 200
    drain()
    age_out(redis, *conversations)
    statuses = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def follow(conversation):
        start.wait()
        try:
            api.data_interface.followup(conversation)
            status = 200
        except Conflict:
            status = 409
        with lock:
            statuses.append((conversation, status))

    for conversation in conversations:
        start.reset()
        threads = [threading.Thread(target=follow, args=(conversation,)) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    for conversation in conversations:
        answers = sorted(s for c, s in statuses if c == conversation)
        assert answers == [200] + [409] * 7, (conversation, answers)
    assert api.get("/dashboard/symbol/m")[1]["followups"] == 5
    drain()
    followups = [r for r in stored_rows(database) if r["kind"] == "followup"]
    assert sorted(r["uuid"] for r in followups) == sorted(conversations)


def test_an_old_followup_is_refused_not_guessed_while_mariadb_is_down(
        make_app, redis, database, mariadb_server):
    api = make_app("redis", OG_CONVERSATION_TTL=WINDOW_S, OG_DATABASE_TIMEOUT=1)
    old = new_uuid()
    assert api.post("/initial", {"uuid": old, "symbol": "n"})[0] == 200
    drain()
    age_out(redis, old)
    mariadb_server.stop()
    try:
        status, answer = api.post("/followup", {"uuid": old})
        assert status == 503 and "cannot look up" in answer["error"], (status, answer)
        # The common path never reads MariaDB: new conversations (the uuid filter has not
        # seen them) and the window's followups all go on without it.
        fresh = [new_uuid() for _ in range(100)]
        assert {api.post("/initial", {"uuid": u, "symbol": "n"})[0] for u in fresh} == {200}
        assert api.post("/followup", {"uuid": fresh[0]})[0] == 200
    finally:
        mariadb_server.start()
    assert api.post("/followup", {"uuid": old})[0] == 200
    assert api.get("/dashboard/symbol/n")[1]["followups"] == 2


def test_a_uuid_reused_after_its_window_is_a_409_from_og_events(make_app, redis, database):
    api = make_app("redis", OG_CONVERSATION_TTL=WINDOW_S)
    reused, fresh = new_uuid(), new_uuid()
    assert api.post("/initial", {"uuid": reused, "symbol": "q"})[0] == 200
    drain()
    age_out(redis, reused)
    status, answer = api.post("/initial", {"uuid": reused, "symbol": "r"})
    assert status == 409 and "already exists" in answer["error"], (status, answer)
    assert api.post("/initial", {"uuid": fresh, "symbol": "r"})[0] == 200
    assert [api.get(f"/dashboard/symbol/{s}")[1]["count"] for s in "qr"] == [1, 1]
    drain()
    assert sorted(r["uuid"] for r in stored_rows(database)) == sorted([reused, fresh])


def test_the_filter_and_og_events_agree_on_every_bit(make_app, redis, redis_server, database):
    # core/seen.py is the Python twin of initial.lua's positions: `ingest rebuild` refills
    # the filter with it, so the two must set the same bits.
    api = make_app("redis", OG_UUID_FILTER_MB=1)
    bits = seen.bits_per_partition(1, 1)
    started = [new_uuid() for _ in range(200)]
    for conversation in started:
        assert api.post("/initial", {"uuid": conversation, "symbol": "s"})[0] == 200
    raw = raw_value(redis_server, keys.seen(0))
    assert raw.rstrip(b"\0") == seen.bitmap(started, bits).rstrip(b"\0")


def test_a_false_positive_costs_one_lookup_and_is_accepted(make_app, redis, redis_server,
                                                         database):
    # A filter of 8 bits is full after a few conversations: every new uuid looks seen,
    # og.events says it is not, and it is accepted.
    api = make_app("redis")
    redis.set(keys.seen_bits(0), 8)  # the store's recorded size is the one the API uses
    started = [new_uuid() for _ in range(40)]
    for conversation in started:
        assert api.post("/initial", {"uuid": conversation, "symbol": "t"})[0] == 200
    assert raw_value(redis_server, keys.seen(0)) == b"\xff"
    assert api.get("/dashboard/symbol/t")[1]["count"] == 40
    status, _ = api.post("/initial", {"uuid": started[0], "symbol": "t"})
    assert status == 409  # inside its window: the key says so


def test_rebuild_refills_the_filter_after_redis_lost_it(make_app, redis, redis_server, database):
    api = make_app("redis", OG_CONVERSATION_TTL=WINDOW_S, OG_UUID_FILTER_MB=1)
    started = [new_uuid() for _ in range(30)]
    for conversation in started:
        assert api.post("/initial", {"uuid": conversation, "symbol": "u"})[0] == 200
    drain()
    before = raw_value(redis_server, keys.seen(0))
    redis.flushall()
    result = run_ingest("rebuild", REDIS_URL=api.env["REDIS_URL"],
                        DATABASE_URL=api.env["DATABASE_URL"], OG_UUID_FILTER_MB=1,
                        OG_CONVERSATION_TTL=WINDOW_S)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout)  # with the seconds of each phase, for operators
    phases = summary["phases"]
    assert set(phases) == {"create_tables_s", "range_buckets_s", "uuid_filter_s", "fenced_s",
                           "total_s"}, phases
    assert phases["fenced_s"] == summary["fenced_s"] and phases["uuid_filter_s"] > 0
    assert sum(v for k, v in phases.items() if k != "total_s") <= phases["total_s"] + 0.01
    # SETBIT grows the string only as far as its highest bit; the rebuilt one is whole.
    assert raw_value(redis_server, keys.seen(0)).rstrip(b"\0") == before.rstrip(b"\0") != b""
    age_out(redis, *started)
    status, answer = api.post("/initial", {"uuid": started[0], "symbol": "u"})
    assert status == 409, (status, answer)


def test_the_store_keeps_one_filter_size_and_rebuild_changes_it(make_app, redis, redis_server,
                                                                database):
    first = make_app("redis", OG_CONVERSATION_TTL=WINDOW_S, OG_UUID_FILTER_MB=1)
    started = [new_uuid() for _ in range(20)]
    for conversation in started[:10]:
        assert first.post("/initial", {"uuid": conversation, "symbol": "v"})[0] == 200
    # A process configured with another size follows the store's, so both find the bits.
    second = make_app("redis", OG_CONVERSATION_TTL=WINDOW_S, OG_UUID_FILTER_MB=2)
    for conversation in started[10:]:
        assert second.post("/initial", {"uuid": conversation, "symbol": "v"})[0] == 200
    assert int(redis.get(keys.seen_bits(0))) == seen.bits_per_partition(1, 1)
    drain()
    age_out(redis, *started)
    assert {second.post("/initial", {"uuid": c, "symbol": "v"})[0] for c in started} == {409}

    # A rebuild run with another setting keeps the store's size...
    result = run_ingest("rebuild", REDIS_URL=second.env["REDIS_URL"],
                        DATABASE_URL=second.env["DATABASE_URL"], OG_UUID_FILTER_MB=2,
                        OG_CONVERSATION_TTL=WINDOW_S)
    assert result.returncode == 0, result.stdout + result.stderr
    assert int(redis.get(keys.seen_bits(0))) == seen.bits_per_partition(1, 1)
    assert json.loads(result.stdout)["uuid_filter_resized"] is False
    # ...and resizes it only when asked.
    result = run_ingest("rebuild", "--resize-uuid-filter", REDIS_URL=second.env["REDIS_URL"],
                        DATABASE_URL=second.env["DATABASE_URL"], OG_UUID_FILTER_MB=2,
                        OG_CONVERSATION_TTL=WINDOW_S)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["uuid_filter_resized"] is True
    bits = seen.bits_per_partition(2, 1)
    assert int(redis.get(keys.seen_bits(0))) == bits
    assert raw_value(redis_server, keys.seen(0)) == seen.bitmap(started, bits)
    assert {first.post("/initial", {"uuid": c, "symbol": "v"})[0] for c in started} == {409}


def test_an_older_og_events_is_upgraded_and_its_conversations_found(make_app, redis, database):
    api = make_app("redis", OG_CONVERSATION_TTL=WINDOW_S)
    old = new_uuid()
    assert api.post("/initial", {"uuid": old, "symbol": "w"})[0] == 200
    drain()
    # As an earlier version left it: no uuid_key, a full uuid index instead.
    with database.begin() as connection:
        connection.exec_driver_sql("ALTER TABLE events DROP INDEX events_by_uuid_key, "
                                   "DROP COLUMN uuid_key, ADD INDEX events_by_uuid (uuid)")
    event_store.create_tables(database)
    with database.connect() as connection:
        indexes = {row[2] for row in connection.exec_driver_sql("SHOW INDEX FROM events")}
        assert "events_by_uuid_key" in indexes and "events_by_uuid" not in indexes
        found = event_store.find_conversation(connection, old)
    assert found[0] == "w" and found[3] is False
    age_out(redis, old)
    assert api.post("/followup", {"uuid": old})[0] == 200


def test_a_followup_late_in_its_window_is_still_a_409_when_retried_after_it(
        make_app, redis, database):
    # The followup lands in og.events only after the ingest delay. Followed up just
    # before its conversation's window ends and retried just after, it must be found in
    # Redis still: the followed-up key lives a whole window from the followup.
    api = make_app("redis", OG_CONVERSATION_TTL=2)
    conversation = new_uuid()
    started = time.monotonic()
    assert api.post("/initial", {"uuid": conversation, "symbol": "x"})[0] == 200
    drain()  # the initial is in og.events; the followup below will not be
    time.sleep(max(0.0, started + 1.5 - time.monotonic()))  # late in the window
    assert api.post("/followup", {"uuid": conversation})[0] == 200
    time.sleep(max(0.0, started + 2.3 - time.monotonic()))  # the initial's window is over
    status, answer = api.post("/followup", {"uuid": conversation})
    assert status == 409 and "already followed up" in answer["error"], (status, answer)
    drain()
    assert [r["kind"] for r in stored_rows(database) if r["uuid"] == conversation] == [
        "initial", "followup"]
