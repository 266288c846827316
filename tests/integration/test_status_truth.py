"""`ingest status` and the worker's gauges stay true across worker deaths and group
re-creation (issue 11, item 4): undrained, lag, pending, oldest pending age, consumers
(gone ones holding nothing are removed, ones holding entries never). Redis restarts
under load are in tests/e2e/test_status_after_restart.py."""
import time

import pytest

from core import keys
from core.store.scripts import ALL as SCRIPTS
from harness.servers import free_port
from tests.workers import (STREAM, append_events, assert_stored_exactly, group_state,
                           ingest_status, scrape_metrics, wait_drained, wait_for, worker_port)

WAIT_S = 30.0
S = (("stream", STREAM),)


def status_of(redis_server):
    """`python -m ingest status --json` of partition 0."""
    return ingest_status(REDIS_URL=redis_server.url)


def figures(status):
    return (status["length"], status["undrained"], status["lag"], status["pending"])


def gauges(port):
    metrics = scrape_metrics(port)
    return (metrics.get(("og_ingest_stream_length", S)), metrics.get(("og_ingest_undrained", S)),
            metrics.get(("og_ingest_lag", S)), metrics.get(("og_ingest_pending", S)))


def consumer_series(port):
    return {dict(labels)["consumer"]: value for (name, labels), value in scrape_metrics(port).items()
            if name == "og_ingest_consumer_pending"}


def hold_a_batch(redis, mariadb_server, n):
    """Make the running worker read n appended entries and hang in its INSERT (og.events locked);
    returns (entries, the lock's connection: close it to let the INSERT go)."""
    lock = mariadb_server.connect(database="og")
    with lock.cursor() as cursor:
        cursor.execute("LOCK TABLES events READ")
    entries = append_events(redis, n)
    wait_for(lambda: group_state(redis)[2] == n, "the batch to be read")
    time.sleep(0.3)  # the committer is in its INSERT now
    return entries, lock


def wait_events_table(database):
    import sqlalchemy

    def exists():
        with database.connect() as connection:
            return connection.execute(sqlalchemy.text("SHOW TABLES LIKE 'events'")).first()

    wait_for(exists, "og.events")


# --- forget_consumers.lua ---------------------------------------------------------------


def test_forget_consumers_removes_only_idle_consumers_holding_nothing(redis):
    forget = redis.register_script(SCRIPTS["forget_consumers"].text)
    assert forget(keys=[STREAM], args=[keys.GROUP, 0, "me"]) == []  # no stream, no group
    append_events(redis, 5)
    assert forget(keys=[STREAM], args=[keys.GROUP, 0, "me"]) == []  # no group
    redis.xgroup_create(STREAM, keys.GROUP, id="0")
    redis.xreadgroup(keys.GROUP, "holder", {STREAM: ">"}, count=2)
    for name in ("idle", "me"):
        redis.xgroup_createconsumer(STREAM, keys.GROUP, name)
    time.sleep(0.3)
    assert forget(keys=[STREAM], args=[keys.GROUP, 10_000, "me"]) == []  # not idle long enough
    redis.xgroup_createconsumer(STREAM, keys.GROUP, "fresh")
    assert forget(keys=[STREAM], args=[keys.GROUP, 200, "me"]) == ["idle"]
    consumers = {c["name"]: c["pending"] for c in redis.xinfo_consumers(STREAM, keys.GROUP)}
    # The holder keeps its entries (DELCONSUMER would have dropped them from the PEL),
    # the caller keeps its name, the fresh one is not idle yet.
    assert consumers == {"holder": 2, "me": 0, "fresh": 0}
    assert redis.xpending(STREAM, keys.GROUP)["pending"] == 2
    redis.xack(STREAM, keys.GROUP, *[p["message_id"] for p in redis.xpending_range(
        STREAM, keys.GROUP, min="-", max="+", count=10)])
    time.sleep(0.3)
    assert sorted(forget(keys=[STREAM], args=[keys.GROUP, 200, "me"])) == ["fresh", "holder"]
    assert [c["name"] for c in redis.xinfo_consumers(STREAM, keys.GROUP)] == ["me"]


# --- a worker killed -------------------------------------------------------------------


def test_a_killed_workers_pending_shows_until_reclaimed_then_its_consumer_goes(
        redis, database, redis_server, mariadb_server, ingest):
    dead = ingest(name="dead").start(redis)
    wait_events_table(database)
    entries, lock = hold_a_batch(redis, mariadb_server, 50)
    try:
        dead.kill()
    finally:
        lock.close()
    time.sleep(1.0)

    status = status_of(redis_server)
    assert figures(status) == (50, 50, 0, 50)
    assert status["oldest_pending_id"] == entries[0][0]
    assert 1.0 <= status["oldest_pending_age_s"] < 20
    assert [(c["name"], c["pending"]) for c in status["consumer_details"]] == [(dead.consumer, 50)]
    assert status["consumer_details"][0]["idle_ms"] >= 1000

    # A live worker that does not reclaim yet (claim idle 60 s), with a short bound for
    # gone consumers: the dead one holds entries, so it must stay, however idle.
    port = free_port()
    watcher = ingest(name="watcher", OG_INGEST_METRICS_PORT=port, OG_INGEST_CLAIM_IDLE_MS=60_000,
                     OG_INGEST_CONSUMER_IDLE_MS=300).start(redis)
    port = worker_port(watcher)
    wait_for(lambda: gauges(port) == (50, 50, 0, 50), "the watcher's gauges")
    time.sleep(1.5)  # several passes of the forgetting
    assert consumer_series(port).get(dead.consumer) == 50
    age = scrape_metrics(port)[("og_ingest_oldest_pending_age_seconds", S)]
    assert 2.0 <= age < 30
    status = status_of(redis_server)
    assert figures(status) == (50, 50, 0, 50)
    assert {c["name"]: c["pending"] for c in status["consumer_details"]}[dead.consumer] == 50
    assert watcher.terminate() == 0  # a clean exit takes its own (empty) consumer away

    # A worker that reclaims after 0.5 s and forgets consumers idle 1.5 s.
    port = free_port()
    finisher = ingest(name="finisher", OG_INGEST_METRICS_PORT=port, OG_INGEST_CLAIM_IDLE_MS=500,
                      OG_INGEST_CONSUMER_IDLE_MS=1500).start(redis)
    port = worker_port(finisher)
    wait_drained(redis, finisher)
    assert_stored_exactly(database, {(u, k) for _, u, k in entries})

    def only_the_finisher():
        return [c["name"] for c in redis.xinfo_consumers(STREAM, keys.GROUP)] == [finisher.consumer]

    wait_for(only_the_finisher, "the dead consumer to be removed")
    status = status_of(redis_server)
    assert figures(status) == (0, 0, 0, 0)
    assert status["undrained_counter"] == 0
    assert status["oldest_pending_id"] is None and status["oldest_pending_age_s"] is None
    assert [(c["name"], c["pending"]) for c in status["consumer_details"]] == [(finisher.consumer, 0)]

    def settled():
        metrics = scrape_metrics(port)
        return (gauges(port) == (0, 0, 0, 0)
                and metrics[("og_ingest_oldest_pending_age_seconds", S)] == 0
                and metrics[("og_ingest_consumers", S)] == 1
                and consumer_series(port) == {finisher.consumer: 0})

    wait_for(settled, "the finisher's gauges")
    assert scrape_metrics(port)[("og_ingest_consumers_removed_total", ())] == 1
    assert f"removed 1 gone consumer(s) from the group: {dead.consumer}" in finisher.log()
    assert finisher.terminate() == 0


# --- the group destroyed and recreated -----------------------------------------------------


def test_status_without_a_group_counts_the_whole_stream(redis, redis_server):
    append_events(redis, 20)
    redis.xgroup_create(STREAM, keys.GROUP, id="0")
    redis.xreadgroup(keys.GROUP, "reader", {STREAM: ">"}, count=5)
    assert figures(status_of(redis_server)) == (20, 20, 15, 5)
    redis.xgroup_destroy(STREAM, keys.GROUP)
    status = status_of(redis_server)
    # A new group starts from the stream's beginning: all 20 are to be read.
    assert (status["group"], *figures(status), status["consumers"]) == (False, 20, 20, 20, 0, 0)
    assert status["oldest_pending_id"] is None and status["consumer_details"] == []


@pytest.mark.parametrize("loss", ["destroy", "flushall"])
def test_status_and_gauges_after_the_group_is_recreated(redis, database, redis_server,
                                                        mariadb_server, ingest, loss):
    port = free_port()
    worker = ingest(OG_INGEST_METRICS_PORT=port, OG_INGEST_CLAIM_IDLE_MS=500).start(redis)
    port = worker_port(worker)
    wait_events_table(database)
    before, lock = hold_a_batch(redis, mariadb_server, 50)
    try:
        wait_for(lambda: gauges(port) == (50, 50, 0, 50)
                 and consumer_series(port) == {worker.consumer: 50}, "the gauges of the batch")
        if loss == "destroy":
            redis.xgroup_destroy(STREAM, keys.GROUP)  # the stream and its counter stay
            # The worker recreates the group from the stream's start and reads the 50
            # again (its committer still hangs in the INSERT of the first reading).
            wait_for(lambda: status_of(redis_server)["group"], "the group to be recreated")
            wait_for(lambda: gauges(port) == (50, 50, 0, 50), "the gauges of the new group")
            status = status_of(redis_server)
            assert figures(status) == (50, 50, 0, 50)
            assert [(c["name"], c["pending"]) for c in status["consumer_details"]] == [
                (worker.consumer, 50)]
        else:
            redis.flushall()  # stream, group and counter gone, as when Redis loses its data
    finally:
        lock.close()  # the held batch is written now, then its ack finds no group
    after = append_events(redis, 30, seed=1)
    wait_drained(redis, worker)
    assert worker.running, worker.log()
    assert_stored_exactly(database, {(u, k) for _, u, k in before + after})

    status = status_of(redis_server)
    assert figures(status) == (0, 0, 0, 0) and status["group"]
    assert status["undrained_counter"] == 0
    assert status["oldest_pending_id"] is None
    assert [(c["name"], c["pending"]) for c in status["consumer_details"]] == [(worker.consumer, 0)]
    # The gauges follow the new group: nothing left of the old one's figures.
    wait_for(lambda: gauges(port) == (0, 0, 0, 0)
             and consumer_series(port) == {worker.consumer: 0}, "the gauges of the new group")
    assert scrape_metrics(port)[("og_ingest_oldest_pending_age_seconds", S)] == 0
    assert worker.terminate() == 0
