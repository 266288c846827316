"""The redis backend and the worker on a real Redis Cluster (3 masters, 1 replica each),
found from REDIS_URL alone: exact dashboards and raw store, partitions on every master,
scripts reloaded per node, a changed partition count refused, WAIT that says 503 when no
replica has the write."""
import json
import random
import time
from datetime import datetime

from core import keys
from tests.conversations import converse
from tests.cluster_driver import PARTITIONS, assert_symbol_dashboards_match_events
from tests.range_oracle import assert_buckets_exact, brute_range
from tests.workers import assert_stored_exactly, drain, new_uuid, run_ingest


def post(api, path, body):
    return api.post(path, body)


def get(api, path):
    return api.get(path)


def cluster_app(make_app, cluster, **settings):
    return make_app("redis", REDIS_URL=cluster.url, OG_STREAM_PARTITIONS=PARTITIONS, **settings)


def test_api_and_worker_on_a_cluster_store_and_count_exactly(make_app, cluster, database):
    api = cluster_app(make_app, cluster)
    accepted = converse(api, 300, 0.5, random.Random(1))[0]
    # Every master holds partitions: keys land on all of them.
    for master in cluster.masters():
        assert master.execute("DBSIZE") > 0, master
    # A repeated uuid is still a 409, a second followup too, on whatever node.
    conversation = next(u for u, k in accepted if k == "followup")
    assert post(api, "/initial", {"uuid": conversation, "symbol": "a"})[0] == 409
    assert post(api, "/followup", {"uuid": conversation})[0] == 409
    assert post(api, "/followup", {"uuid": new_uuid()})[0] == 404

    drain()  # the worker, from the same settings: a RedisCluster client, per-partition reads
    assert_stored_exactly(database, accepted)
    assert_buckets_exact(database)
    assert_symbol_dashboards_match_events(lambda path: get(api, path), database)
    status, rows = get(api, "/dashboard/range/2000-01-01/2100-01-01")
    assert status == 200 and rows == brute_range(database, datetime(2000, 1, 1), datetime(2100, 1, 1))


def test_scripts_are_loaded_again_on_each_node_that_lost_them(make_app, cluster, database):
    api = cluster_app(make_app, cluster)
    converse(api, 30, 0.0, random.Random(2))[0]
    for master in cluster.masters():
        master.execute("SCRIPT", "FLUSH")
    accepted = converse(api, 60, 0.5, random.Random(3))[0]  # every call answered, none lost
    assert len(accepted) >= 60


def test_another_partition_count_is_refused_not_split(make_app, cluster, database, mariadb_server,
                                                      env):
    api = cluster_app(make_app, cluster)
    accepted = converse(api, 40, 0.5, random.Random(4))[0]
    other = make_app("redis", REDIS_URL=cluster.url, OG_STREAM_PARTITIONS=2)
    conversation = next(u for u, k in accepted if k == "initial")
    for path, body in (("/initial", {"uuid": new_uuid(), "symbol": "a"}),
                       ("/followup", {"uuid": conversation}),
                       ("/initial", {"uuid": conversation, "symbol": "a"})):
        status, answer = post(other, path, body)
        assert status == 503, (path, answer)  # never a 404 or a 200 from a wrong partition
        assert f"OG_STREAM_PARTITIONS={PARTITIONS}" in answer["error"], answer
    result = run_ingest("run", "--burst", REDIS_URL=cluster.url, DATABASE_URL=mariadb_server.url,
                        OG_STREAM_PARTITIONS=2)
    assert result.returncode == 2, result.stderr
    assert "OG_STREAM_PARTITIONS=2" in result.stderr
    # The store is untouched: the right settings still drain all of it.
    env(OG_STREAM_PARTITIONS=PARTITIONS)
    drain()
    assert_stored_exactly(database, accepted)


def test_a_drained_store_changes_partition_count_through_rebuild(make_app, redis, redis_server,
                                                                 mariadb_server, database):
    settings = {"REDIS_URL": redis_server.url, "DATABASE_URL": mariadb_server.url}
    api = make_app("redis", OG_STREAM_PARTITIONS=1)
    accepted = converse(api, 50, 0.0, random.Random(5))[0]
    refused = run_ingest("rebuild", OG_STREAM_PARTITIONS=4, **settings)
    assert refused.returncode == 2 and "drained" in refused.stderr  # undrained entries
    drain()
    done = run_ingest("rebuild", OG_STREAM_PARTITIONS=4, **settings)
    assert done.returncode == 0, done.stderr
    assert redis.get(keys.layout()) == "4"
    api4 = make_app("redis", OG_STREAM_PARTITIONS=4)
    conversation = next(u for u, _ in accepted)
    assert post(api4, "/followup", {"uuid": conversation})[0] == 200  # found in its new partition
    assert post(api4, "/initial", {"uuid": conversation, "symbol": "a"})[0] == 409
    drain()
    assert_stored_exactly(database, accepted | {(conversation, "followup")})


def test_wait_without_a_replica_answers_503_and_a_retry_tells_what_happened(
        make_app, cluster, database):
    orphan = cluster.masters()[0]
    replica = cluster.replicas_of(orphan)[0]
    cluster.kill(replica)
    api = cluster_app(make_app, cluster, OG_REDIS_WAIT_REPLICAS=1, OG_REDIS_TIMEOUT=0.6)
    statuses = {}
    for _ in range(80):
        conversation = new_uuid()
        status, answer = post(api, "/initial", {"uuid": conversation, "symbol": "a"})
        key = keys.conversation(keys.partition_of(conversation, PARTITIONS), conversation)
        orphaned = cluster.master_of_slot(keys.slot(key)).port == orphan.port
        statuses.setdefault(orphaned, []).append((conversation, status, answer))
    assert {s for _, s, _ in statuses[False]} == {200}  # replicated elsewhere: fine
    assert {s for _, s, _ in statuses[True]} == {503}  # never a 200 that is not safe
    assert all("replicas" in answer["error"] for _, _, answer in statuses[True])
    # Right after a short WAIT the node's writes are refused unsent ("not recorded");
    # a second later they are tried again: run on the master, then reported unsafe.
    time.sleep(1.2)
    while True:
        conversation = new_uuid()
        key = keys.conversation(keys.partition_of(conversation, PARTITIONS), conversation)
        if cluster.master_of_slot(keys.slot(key)).port == orphan.port:
            break
    status, answer = post(api, "/initial", {"uuid": conversation, "symbol": "a"})
    assert status == 503 and "outcome unknown" in answer["error"] and "409" in answer["error"]
    # Retried while the replica is still away: still 503, even though the master holds
    # it, because the 409 too would rest on an unreplicated write.
    assert post(api, "/initial", {"uuid": conversation, "symbol": "a"})[0] == 503
    # The replica back and caught up: retries say the first attempt was recorded (503
    # until the node is known to have its replica again, then 409; never a 200).
    cluster.restart(replica)
    deadline = time.monotonic() + 10
    while (status := post(api, "/initial", {"uuid": conversation, "symbol": "a"})[0]) == 503:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert status == 409


def test_status_and_rebuild_find_the_cluster_from_redis_url(make_app, cluster, database,
                                                           mariadb_server):
    api = cluster_app(make_app, cluster)
    accepted = converse(api, 60, 0.5, random.Random(6))[0]
    settings = {"REDIS_URL": cluster.url, "DATABASE_URL": mariadb_server.url,
                "OG_STREAM_PARTITIONS": PARTITIONS}
    status = run_ingest("status", "--json", **settings)
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert len(report) == PARTITIONS
    assert sum(item["length"] for item in report) == len(accepted)  # nothing drained yet
    drain()
    for master in cluster.masters():  # Redis loses its aggregates (the stream is drained)
        master.execute("FLUSHALL")
    rebuilt = run_ingest("rebuild", **settings)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert_symbol_dashboards_match_events(api.get, database)
    conversation = next(u for u, k in accepted if k == "initial" and (u, "followup") not in accepted)
    assert post(api, "/followup", {"uuid": conversation})[0] == 200  # conversations restored
