"""The API (gunicorn) and ingest workers on a real Redis Cluster under load while a master
is killed, slots are resharded, or a worker dies: the API answers only 200 or 503, no
acknowledged event is lost, none is stored twice, and the dashboards agree with
og.events afterwards."""
import time

import pytest

from tests.cluster_driver import PARTITIONS, assert_symbol_dashboards_match_events, wait_all_drained
from tests.range_oracle import assert_buckets_exact
from tests.workers import Http, Load, assert_nothing_lost, assert_stored_exactly

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
