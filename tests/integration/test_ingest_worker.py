"""The ingest worker as a process (`python -m ingest`): poison entries, SIGTERM, status
and metrics. Events come from the in-process API or are appended to the stream as the
API's scripts would; the worker runs as a child process with real Redis and MariaDB."""
import http.client
import random
import time

import sqlalchemy
from prometheus_client.parser import text_string_to_metric_families

from core import keys
from harness.servers import free_port
from tests.workers import (DEAD, STREAM, append_events, assert_stored_exactly, drain,
                           group_state, ingest_status, new_uuid, run_ingest, wait_drained,
                           wait_for)

WAIT_S = 30.0


def post(api, path, body):
    response = api.client.post(path, json=body)
    return response.status_code


def converse(api, conversations, symbols, rng, followup_rate=0.5):
    accepted = set()
    for _ in range(conversations):
        conversation = new_uuid()
        assert post(api, "/initial", {"uuid": conversation, "symbol": rng.choice(symbols)}) == 200
        accepted.add((conversation, "initial"))
        if rng.random() < followup_rate:
            assert post(api, "/followup", {"uuid": conversation}) == 200
            accepted.add((conversation, "followup"))
    return accepted


def store_settings(redis_server, mariadb_server, **extra):
    return {"REDIS_URL": redis_server.url, "DATABASE_URL": mariadb_server.url, **extra}


# --- poison entries ----------------------------------------------------------------------


def valid_fields(symbol="a"):
    ts = str(int(time.time() * 1_000_000))
    return {"kind": "initial", "uuid": new_uuid(), "symbol": symbol, "guess": "1",
            "ts": ts, "cts": ts}


def poison_entries():
    """Entries the API could never have written, each malformed in one way."""
    fields = valid_fields()
    return [
        {"kind": "initial"},                                          # fields missing
        {**valid_fields(), "kind": "delete"},
        {**valid_fields(), "uuid": "x'); DROP TABLE events; --"},      # would-be SQL
        {**valid_fields(), "symbol": "'"},
        {**valid_fields(), "symbol": "ab"},
        {**valid_fields(), "guess": "2"},
        {**valid_fields(), "ts": "yesterday"},
        {**valid_fields(), "cts": "1" * 17},
        {**fields, "uuid": fields["uuid"].upper()},                    # not canonical
    ]


def test_malformed_entries_are_dead_lettered_and_the_worker_keeps_going(
        make_app, redis, database, redis_server, mariadb_server, ingest):
    api = make_app("redis")
    rng = random.Random(1)
    good = converse(api, 20, "abc", rng)
    poison = {redis.xadd(STREAM, fields): fields for fields in poison_entries()}
    good |= converse(api, 20, "abc", rng)
    settings = store_settings(redis_server, mariadb_server)
    worker = ingest().start(redis)
    wait_drained(redis, worker)

    assert_stored_exactly(database, good)
    dead = redis.xrange(DEAD)
    assert {fields["entry_id"] for _, fields in dead} == set(poison)
    for _, fields in dead:
        original = {k: v for k, v in fields.items() if k not in ("entry_id", "reason")}
        assert original == poison[fields["entry_id"]]
        assert fields["reason"].startswith("malformed"), fields
    # The worker goes on: later events land.
    good |= converse(api, 10, "xyz", rng)
    wait_drained(redis, worker)
    assert_stored_exactly(database, good)

    status = ingest_status(**settings)
    assert (status["length"], status["pending"], status["lag"]) == (0, 0, 0)
    assert status["dead_letters"] == len(poison)
    assert worker.terminate() == 0


def test_an_entry_that_is_not_utf8_is_dead_lettered(make_app, redis, database, redis_server,
                                                      ingest):
    api = make_app("redis")
    rng = random.Random(2)
    good = converse(api, 5, "ab", rng)
    raw = redis_server.client(decode_responses=False)
    try:
        fields = {**valid_fields(), "symbol": "\udcff"}
        encoded = {k.encode(): v.encode("utf-8", "surrogateescape") for k, v in fields.items()}
        poison_id = raw.xadd(STREAM, encoded).decode()
    finally:
        raw.close()
    good |= converse(api, 5, "ab", rng)
    worker = ingest().start(redis)
    wait_drained(redis, worker)
    assert_stored_exactly(database, good)
    tolerant = redis_server.client(encoding_errors="surrogateescape")
    try:
        dead = tolerant.xrange(DEAD)
    finally:
        tolerant.close()
    assert [fields.get("entry_id") for _, fields in dead] == [poison_id]
    assert dead[0][1]["symbol"] == "\udcff"  # the original byte, kept as it was
    good |= converse(api, 5, "cd", rng)
    wait_drained(redis, worker)
    assert_stored_exactly(database, good)
    assert worker.terminate() == 0


def test_rows_mariadb_rejects_are_dead_lettered_after_max_deliveries(
        make_app, redis, database, redis_server, mariadb_server, ingest):
    api = make_app("redis")
    drain()  # the worker creates og.events; then the database starts refusing 'q'
    with database.begin() as connection:
        connection.execute(sqlalchemy.text(
            "ALTER TABLE events ADD CONSTRAINT no_q CHECK (symbol <> 'q')"))
    rng = random.Random(3)
    accepted = converse(api, 40, "pqr", rng)
    entries = redis.xrange(STREAM)
    rejected_ids = {entry_id for entry_id, fields in entries if fields["symbol"] == "q"}
    rejected = {(f["uuid"], f["kind"]) for _, f in entries if f["symbol"] == "q"}
    assert rejected and len(rejected) < len(accepted)

    # One batch holds them all: the good rows must land while the bad ones are retried.
    worker = ingest(OG_INGEST_BATCH_SIZE=1000, OG_INGEST_CLAIM_IDLE_MS=700,
                    OG_INGEST_MAX_DELIVERIES=3).start()
    deliveries_seen = set()

    def dead_lettered():
        pending = redis.xpending_range(STREAM, keys.GROUP, min="-", max="+", count=100)
        deliveries_seen.update(p["times_delivered"] for p in pending
                               if p["message_id"] in rejected_ids)
        if redis.xlen(DEAD) == 0:
            # Not dead-lettered at the first refusal: only after max deliveries.
            assert not pending or {p["message_id"] for p in pending} == rejected_ids
            return False
        return True

    wait_for(lambda: {tuple(e) for e in stored_events_safe(database)} == accepted - rejected,
             "the rest of the batch")
    # Acknowledged once committed (the acker runs a moment after the commit).
    wait_for(lambda: {p["message_id"] for p in redis.xpending_range(
        STREAM, keys.GROUP, min="-", max="+", count=100)} <= rejected_ids,
             "the rest of the batch acknowledged")
    assert redis.xlen(DEAD) == 0, "dead-lettered at the first refusal"
    wait_for(dead_lettered, "the dead letters")
    assert max(deliveries_seen) >= 2, deliveries_seen
    wait_drained(redis, worker)
    wait_for(lambda: redis.xlen(DEAD) == len(rejected_ids), "every rejected entry")

    assert_stored_exactly(database, accepted - rejected)
    dead = redis.xrange(DEAD)
    assert {fields["entry_id"] for _, fields in dead} == rejected_ids
    assert all("rejected" in fields["reason"].lower() for _, fields in dead), dead[0]
    # The worker goes on.
    more = converse(api, 10, "ps", rng)
    wait_drained(redis, worker)
    assert_stored_exactly(database, (accepted - rejected) | more)
    assert ingest_status(**store_settings(redis_server, mariadb_server))["dead_letters"] == len(
        rejected_ids)
    assert worker.terminate() == 0


def stored_events_safe(engine):
    """og.events as (uuid, kind) rows; [] while the table does not exist yet."""
    try:
        with engine.connect() as connection:
            return list(connection.execute(sqlalchemy.text("SELECT uuid, kind FROM events")))
    except sqlalchemy.exc.ProgrammingError:
        return []


# --- kill -9 -------------------------------------------------------------------------------


def test_a_worker_killed_mid_write_leaves_its_batch_to_the_next(redis, database, mariadb_server,
                                                                 ingest):
    worker = ingest().start(redis)
    wait_for(lambda: stored_events_safe(database) == [], "og.events")
    lock = mariadb_server.connect(database="og")
    try:
        with lock.cursor() as cursor:
            cursor.execute("LOCK TABLES events READ")  # the worker's INSERT waits on it
        entries = append_events(redis, 50)
        wait_for(lambda: group_state(redis)[1] == 0, "the batch to be read")
        time.sleep(0.3)  # the committer is in its INSERT now
        # Nothing is acknowledged before it is committed.
        assert group_state(redis) == (50, 0, 50)
        worker.kill()
    finally:
        lock.close()  # releases the lock
    assert stored_events_safe(database) == []  # the killed INSERT was never committed
    fresh = ingest(OG_INGEST_CLAIM_IDLE_MS=200).start(redis)
    wait_drained(redis, fresh)
    assert_stored_exactly(database, {(u, k) for _, u, k in entries})
    assert fresh.terminate() == 0


# --- SIGTERM -------------------------------------------------------------------------------


def test_sigterm_writes_and_acks_what_was_read_then_exits_0(redis, database, ingest):
    entries = append_events(redis, 5000)
    worker = ingest(OG_INGEST_BATCH_SIZE=10).start()
    wait_for(lambda: stored_events_safe(database), "the first rows")
    assert worker.terminate() == 0

    group = redis.xinfo_groups(STREAM)[0]
    assert group["pending"] == 0, "read but not acknowledged"
    last = tuple(map(int, group["last-delivered-id"].split("-")))
    read = [e for e in entries if tuple(map(int, e[0].split("-"))) <= last]
    unread = entries[len(read):]
    assert 0 < len(read) < len(entries), "the worker was not stopped mid-drain"
    assert_stored_exactly(database, {(u, k) for _, u, k in read})
    assert [entry_id for entry_id, _ in redis.xrange(STREAM)] == [e[0] for e in unread]
    assert worker.consumer not in {c["name"] for c in redis.xinfo_consumers(STREAM, keys.GROUP)}

    restarted = ingest().start(redis)
    wait_drained(redis, restarted)
    assert_stored_exactly(database, {(u, k) for _, u, k in entries})
    assert restarted.terminate() == 0


def test_sigterm_while_mariadb_is_down_leaves_the_batch_pending(redis, database, redis_server,
                                                                mariadb_server, ingest):
    worker = ingest().start(redis)  # og.events exists from here on
    mariadb_server.stop()
    try:
        entries = append_events(redis, 30)
        wait_for(lambda: group_state(redis)[2] == 30, "the batch to be read")
        started = time.monotonic()
        assert worker.terminate(timeout=20) == 0
        assert time.monotonic() - started < 15
        assert group_state(redis) == (30, 0, 30)  # kept, for the next worker
    finally:
        mariadb_server.start()
    database.dispose()
    finisher = ingest(OG_INGEST_CLAIM_IDLE_MS=200).start(redis)
    wait_drained(redis, finisher)
    assert_stored_exactly(database, {(u, k) for _, u, k in entries})
    assert finisher.terminate() == 0


# --- status and metrics --------------------------------------------------------------------


def test_status_reports_length_lag_pending_and_dead_letters(redis, redis_server):
    settings = {"REDIS_URL": redis_server.url}
    empty = ingest_status(**settings)
    assert (empty["length"], empty["group"], empty["undrained"], empty["lag"], empty["pending"],
            empty["dead_letters"], empty["oldest_pending_id"]) == (0, False, 0, 0, 0, 0, None)

    entries = append_events(redis, 10)
    redis.xgroup_create(STREAM, keys.GROUP, id="0")
    redis.xreadgroup(keys.GROUP, "reader", {STREAM: ">"}, count=3)
    for n in range(2):
        redis.xadd(DEAD, {"entry_id": f"0-{n + 1}", "reason": "malformed: test"})
    status = ingest_status(**settings)
    assert status["stream"] == STREAM
    assert (status["length"], status["group"], status["lag"], status["pending"],
            status["consumers"], status["dead_letters"]) == (10, True, 7, 3, 1, 2)
    assert status["undrained"] == status["undrained_counter"] == 10
    assert [(c["name"], c["pending"]) for c in status["consumer_details"]] == [("reader", 3)]
    assert status["oldest_pending_id"] == entries[0][0]
    assert status["last_delivered_id"] == entries[2][0]
    assert 0 <= status["oldest_pending_age_s"] < 60

    text = run_ingest("status", **settings)
    assert text.returncode == 0, text.stderr
    lines = {line.split()[0]: line.split()[-1] for line in text.stdout.splitlines()[1:]}
    assert (lines["length"], lines["lag"], lines["pending"], lines["dead_letters"]) == (
        "10", "7", "3", "2")


def scrape(port):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/metrics")
        response = connection.getresponse()
        assert response.status == 200
        text = response.read().decode()
    finally:
        connection.close()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def test_metrics_count_events_batches_and_dead_letters(redis, database, ingest):
    port = free_port()
    entries = append_events(redis, 25)
    redis.xadd(STREAM, {"kind": "initial"})  # one poison entry
    worker = ingest(OG_INGEST_METRICS_PORT=port, OG_INGEST_BATCH_SIZE=10).start(redis)
    wait_drained(redis, worker)
    stream = (("stream", STREAM),)

    def settled(written):
        metrics = scrape(port)
        return (metrics.get(("og_ingest_events_written_total", ())) == written
                and metrics.get(("og_ingest_lag", stream)) == 0
                and metrics.get(("og_ingest_pending", stream)) == 0
                and metrics.get(("og_ingest_stream_length", stream)) == 0)

    wait_for(lambda: settled(25), "the metrics of the drain", timeout=10)
    metrics = scrape(port)
    assert metrics[("og_ingest_dead_letters_total", ())] == 1
    assert metrics[("og_ingest_batches_total", ())] >= 3
    assert metrics[("og_ingest_batch_seconds_count", ())] == metrics[("og_ingest_batches_total", ())]

    more = append_events(redis, 7, seed=1)
    wait_drained(redis, worker)
    wait_for(lambda: settled(32), "the metrics of more events", timeout=10)
    assert_stored_exactly(database, {(u, k) for _, u, k in entries + more})
    assert worker.terminate() == 0


def test_running_worker_recreates_its_group_after_redis_loses_its_data(
        make_app, redis, database, ingest):
    api = make_app("redis")
    rng = random.Random(4)
    worker = ingest().start(redis)
    before = converse(api, 20, "ab", rng)
    wait_drained(redis, worker)
    redis.flushall()  # stream, group and aggregates gone, as after losing Redis
    after = converse(api, 20, "ab", rng)
    wait_drained(redis, worker)
    assert_stored_exactly(database, before | after)
    assert worker.terminate() == 0


def test_acknowledged_entries_no_batch_comes_to_trim_are_trimmed(redis, database, ingest):
    # What a failover can leave: a master acked entries, the ack reached its replica,
    # the trim did not; no new write reaches the partition to trim them with its batch.
    append_events(redis, 30, symbols="a")
    redis.xgroup_create(STREAM, keys.GROUP, id="0")
    read = redis.xreadgroup(keys.GROUP, "gone", {STREAM: ">"})
    redis.xack(STREAM, keys.GROUP, *[entry_id for entry_id, _ in read[0][1]])
    assert group_state(redis) == (30, 0, 0)
    worker = ingest().start(redis)
    wait_for(lambda: redis.xlen(STREAM) == 0, "acknowledged entries trimmed")
    assert int(redis.get(keys.undrained(0))) == 0
    assert worker.terminate() == 0


def test_worker_recreates_og_events_dropped_under_it(make_app, redis, database, ingest):
    api = make_app("redis")
    rng = random.Random(5)
    worker = ingest().start(redis)
    converse(api, 10, "ab", rng)
    wait_drained(redis, worker)
    with database.begin() as connection:
        connection.execute(sqlalchemy.text("DROP TABLE events"))
    after = converse(api, 20, "ab", rng)
    wait_drained(redis, worker)
    assert_stored_exactly(database, after)
    assert worker.terminate() == 0


def test_worker_gives_up_on_nothing_when_redis_is_unreachable_at_start(
        redis, database, redis_server, ingest):
    # Redis is not there when the worker starts; it waits, then drains once Redis is.
    entries = append_events(redis, 20)
    redis_server.stop()
    try:
        worker = ingest().start()
        time.sleep(2)
        assert worker.running, worker.log()
    finally:
        redis_server.start()
    client = redis_server.client()
    try:
        wait_drained(client, worker)
    finally:
        client.close()
    assert_stored_exactly(database, {(u, k) for _, u, k in entries})
    assert worker.terminate() == 0


def test_an_error_no_retry_can_help_stops_the_worker_with_exit_1(redis, database, redis_server,
                                                                 mariadb_server):
    # A value the ack script cannot use (here: a counter that is not a number) is a fault
    # no retry fixes: the worker must stop and say so in its exit status (a supervisor
    # restarts it), not exit 0 as if asked to. The rows were committed before the ack.
    made = {(uuid, kind) for _, uuid, kind in append_events(redis, 30, symbols="xy")}
    redis.set(keys.undrained(0), "not a number")
    settings = store_settings(redis_server, mariadb_server)
    failed = run_ingest("run", "--burst", **settings)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "commit failed" in failed.stderr
    assert_stored_exactly(database, made)

    redis.delete(keys.undrained(0))
    more = {(uuid, kind) for _, uuid, kind in append_events(redis, 20, symbols="xy", seed=1)}
    fixed = run_ingest("run", "--burst", **settings)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert_stored_exactly(database, made | more)
    assert group_state(redis)[2] == 0


def test_a_batch_larger_than_lua_can_unpack_is_acknowledged(redis, database, redis_server,
                                                            mariadb_server):
    # Lua's unpack() refuses ~8,000 values: a 9,000-entry batch is acked in chunks.
    made = {(uuid, kind) for _, uuid, kind in append_events(redis, 9000, symbols="z")}
    result = run_ingest("run", "--burst", OG_INGEST_BATCH_SIZE=10_000,
                        **store_settings(redis_server, mariadb_server))
    assert result.returncode == 0, result.stdout + result.stderr
    assert_stored_exactly(database, made)
    assert group_state(redis)[2] == 0 and int(redis.get(keys.undrained(0))) == 0
