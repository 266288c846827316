"""The API (gunicorn) and ingest workers on a real Redis Cluster under load while a master
is killed, slots are resharded, or a worker dies: the API answers only 200 or 503, no
acknowledged event is lost, none is stored twice, and the dashboards agree with
og.events afterwards."""
import time

import pytest
from redis.crc import key_slot
from sqlalchemy import inspect

from core import keys
from core.event_store import entry_order
from tests.cluster_driver import PARTITIONS, assert_symbol_dashboards_match_events, wait_all_drained
from tests.range_oracle import assert_buckets_exact
from tests.workers import (Http, Load, assert_nothing_lost, assert_stored_exactly, new_uuid,
                           wait_for)

CLUSTER_SETTINGS = {"OG_STREAM_PARTITIONS": PARTITIONS, "OG_INGEST_CLAIM_IDLE_MS": 1000,
                    "OG_INGEST_BATCH_SIZE": 200}


CHECK_BOUND_S = 300
"""Load (at most ~100 s with its waits) and the drain's own 90 s bound fit in it, so a
drain that fails says why (streams, cluster, worker log) instead of a bare timeout."""


def start(gunicorn_server, ingest, cluster, workers=1, **settings):
    settings = {"REDIS_URL": cluster.url, **CLUSTER_SETTINGS, **settings}
    server = gunicorn_server("redis", workers=2, **settings)
    started = [ingest(name=f"w{i}", **settings).start() for i in range(workers)]
    return server, started


def check_after(server, cluster, database, load, workers):
    client = cluster.client()
    wait_all_drained(client, workers[0], timeout=90, cluster=cluster)
    assert_nothing_lost(database, load.accepted, load.uncertain)
    assert_buckets_exact(database)
    http = Http(server.url)
    try:
        assert_symbol_dashboards_match_events(http.get, database)
    finally:
        http.close()


@pytest.mark.timeout(CHECK_BOUND_S)
def test_master_killed_under_load_with_wait_loses_no_acknowledged_event(
        gunicorn_server, ingest, cluster, database):
    server, workers = start(gunicorn_server, ingest, cluster, OG_REDIS_WAIT_REPLICAS=1)
    # The node REDIS_URL names: the API and the worker must find the cluster without it.
    url_port = int(cluster.url.rsplit(":", 1)[1].split("/")[0])
    victim = next(m for m in cluster.masters() if m.port == url_port)
    with Load(server.url, threads=6, seconds=90, conversations=50_000) as load:
        load.wait_for(500)
        cluster.kill(victim)
        cluster.wait_failover(victim)
        # The promoted replica has no replica of its own until the dead master comes back
        # (as its replica): meanwhile its slots answer 503, the other masters' 200.
        during = len(load.snapshot())
        load.wait_for(during + 100, timeout=30)
        cluster.restart(victim)
        after = len(load.snapshot())
        # Writes succeed everywhere again, with no restart of the API or the worker.
        load.wait_for(after + 500, timeout=30)
    assert set(load.statuses) <= {200, 503}, load.statuses  # never a 500, never no answer
    assert load.statuses[503] > 0, "the kill was not under load"
    check_after(server, cluster, database, load, workers)


@pytest.mark.timeout(CHECK_BOUND_S)
def test_reshard_under_load_answers_and_stores_every_event_once(
        gunicorn_server, ingest, cluster, database):
    server, workers = start(gunicorn_server, ingest, cluster)
    source, target = cluster.masters()[:2]
    with Load(server.url, threads=6, seconds=90, conversations=50_000) as load:
        load.wait_for(300)
        cluster.reshard(2000, source, target)  # moves the slots of several partitions
        cluster.reshard(2000, target, source)
        load.wait_for(len(load.snapshot()) + 200, timeout=30)
    assert set(load.statuses) <= {200, 503}, load.statuses
    assert load.statuses[200] > 0
    check_after(server, cluster, database, load, workers)
    if not load.uncertain:
        assert_stored_exactly(database, load.accepted)


@pytest.mark.timeout(CHECK_BOUND_S)
def test_two_workers_one_killed_lose_and_duplicate_nothing(gunicorn_server, ingest, cluster, database):
    server, workers = start(gunicorn_server, ingest, cluster, workers=2)
    with Load(server.url, threads=6, seconds=90, conversations=50_000) as load:
        load.wait_for(500)
        time.sleep(0.5)
        workers[0].kill()
        load.wait_for(len(load.snapshot()) + 500, timeout=30)
    assert set(load.statuses) == {200}, load.statuses
    # The survivor reclaims what the dead one held (after OG_INGEST_CLAIM_IDLE_MS).
    check_after(server, cluster, database, load, workers[1:])
    assert_stored_exactly(database, load.accepted)


def _post_initials(http, partition, symbol, count):
    """`count` initials of `symbol` that the API answered 200, all in `partition`."""
    accepted = []
    while len(accepted) < count:
        uuid = new_uuid()
        if keys.partition_of(uuid, PARTITIONS) == partition:
            status, _ = http.post("/initial", {"uuid": uuid, "symbol": symbol})
            if status == 200:
                accepted.append(uuid)
            else:  # 503 while the API finds the new master: another uuid
                time.sleep(0.1)
    return accepted


def _event_ids(database, uuids):
    marks = ", ".join(["%s"] * len(uuids))
    with database.connect() as connection:
        return [row[0] for row in connection.exec_driver_sql(
            f"SELECT event_id FROM events WHERE kind = 'initial' AND uuid IN ({marks})",
            tuple(uuids))]


def _mark(node, partition):
    """The stored mark (ack.lua) as `node` has it."""
    return entry_order(node.execute("GET", keys.stored(partition)) or "0-0")


@pytest.mark.timeout(CHECK_BOUND_S)
def test_events_a_master_took_before_its_replica_took_over_silently_are_given_back(
        gunicorn_server, ingest, cluster, database):
    """A master takes writes its replica never gets, the worker stores and acknowledges
    them there, then the replica takes over (no node fails, so the worker's connections
    see no error, only MOVED), and the new master's acks of newer events move the stored
    mark past the lost ones. The worker must still give them back to Redis: the lost
    initials count on /dashboard/symbol again. (Before the worker took a slot-map change
    for an error, it judged only events past the mark, and they stayed uncounted.)"""
    server, _ = start(gunicorn_server, ingest, cluster)
    partition = 0
    master = cluster.master_of_slot(key_slot(keys.stream(partition).encode()))
    replica = cluster.replicas_of(master)[0]
    http = Http(server.url)
    wait_for(lambda: inspect(database).has_table("events"), "the worker made og.events")
    try:
        # The replica is cut off: it can no longer authenticate to its master.
        replica.execute("CONFIG", "SET", "masterauth", "not-the-password")
        master.execute("CLIENT", "KILL", "TYPE", "replica")
        wait_for(lambda: replica.replication_info()["master_link_status"] == "down",
                 "the replica's link is down")
        lost = _post_initials(http, partition, "x", 10)
        wait_for(lambda: len(_event_ids(database, lost)) == 10, "the lost initials stored")
        newest_lost = max(_event_ids(database, lost), key=entry_order)
        wait_for(lambda: _mark(master, partition) >= entry_order(newest_lost),
                 "the lost initials acknowledged on the master")
        replica.execute("CLUSTER", "FAILOVER", "TAKEOVER")
        wait_for(lambda: replica.myself().role == "master", "the replica took over")
        newer = _post_initials(http, partition, "y", 10)
        wait_for(lambda: len(_event_ids(database, newer)) == 10, "the newer initials stored")
        wait_for(lambda: _mark(replica, partition) > entry_order(newest_lost),
                 "the new master's stored mark past the lost initials")
        assert replica.execute("XRANGE", keys.stream(partition), newest_lost, newest_lost) == []
        wait_for(lambda: http.get("/dashboard/symbol/x")[1].get("count") == 10,
                 "/dashboard/symbol/x counts the lost initials again")
        assert http.get("/dashboard/symbol/y")[1]["count"] == 10
    finally:
        replica.execute("CONFIG", "SET", "masterauth", "")
        http.close()
