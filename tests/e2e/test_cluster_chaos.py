"""Chaos on a real 6-node Redis Cluster under load, with WAIT 1 and two ingest workers: a
seeded, bounded schedule of every fault a cluster and its database go through, then an
exactness check. No API process or worker may exit or need a restart.

OG_CHAOS_ROUNDS (default 1) repeats the whole schedule, each round in another seeded
order; OG_CHAOS_SEED picks the order; OG_CHAOS_FAULTS (names, comma-separated) runs only
those.
"""
import os
import random
import signal
import time

from core import keys
from tests.cluster_driver import PARTITIONS, assert_symbol_dashboards_match_events, wait_all_drained
from tests.range_oracle import assert_buckets_exact
from tests.workers import Http, Load, new_uuid, stored_events

SETTINGS = {"OG_STREAM_PARTITIONS": PARTITIONS, "OG_REDIS_WAIT_REPLICAS": 1,
            "OG_INGEST_CLAIM_IDLE_MS": 1000, "OG_INGEST_BATCH_SIZE": 200,
            "OG_INGEST_DATABASE_TIMEOUT": 3}
PAUSE_S = 3.0
"""How long a SIGSTOPped node or database stays stopped: past the cluster's node timeout
(1 s in harness/servers.py), so a stopped master is failed over."""
RECOVERY_S = 45.0
"""Bound on the writes coming back after each fault."""


def kill_a_master(cluster, mariadb, rng):
    victim = rng.choice(cluster.masters())  # REDIS_URL's node included
    cluster.kill(victim)
    cluster.wait_failover(victim)
    cluster.restart(victim)


def graceful_failover(cluster, mariadb, rng):
    replica = rng.choice(cluster.replicas())
    replica.execute("CLUSTER", "FAILOVER")  # the master is demoted: WAIT errors there
    deadline = time.monotonic() + RECOVERY_S
    while replica.myself().role != "master":
        assert time.monotonic() < deadline, f"{replica} was not promoted"
        time.sleep(0.1)


def replica_down(cluster, mariadb, rng):
    replica = rng.choice(cluster.replicas())  # its master is short of replicas: 503s
    cluster.kill(replica)
    time.sleep(PAUSE_S)
    cluster.restart(replica)


def reshard(cluster, mariadb, rng):
    source, target = rng.sample(cluster.masters(), 2)
    cluster.reshard(600, source, target)


def stop_a_master(cluster, mariadb, rng):
    victim = rng.choice(cluster.masters())
    os.kill(victim.pid, signal.SIGSTOP)
    try:
        time.sleep(PAUSE_S)
    finally:
        os.kill(victim.pid, signal.SIGCONT)


def stop_mariadb(cluster, mariadb, rng):
    mariadb.stop()
    time.sleep(PAUSE_S)
    mariadb.start()


def freeze_mariadb(cluster, mariadb, rng):
    os.kill(mariadb.pid, signal.SIGSTOP)
    try:
        time.sleep(PAUSE_S)
    finally:
        os.kill(mariadb.pid, signal.SIGCONT)


def _followups_redis_lacks(cluster, database):
    """(partition, entry id, uuid, stored mark) of followups in og.events whose
    conversation key in Redis is not '+': what the catch-up missed, for the message."""
    client = cluster.client()
    with database.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT stream, event_id, uuid FROM events WHERE kind = 'followup'").fetchall()
    lacking = []
    for stream, entry_id, uuid in rows:
        state = client.get(keys.conversation(stream, uuid))
        if not state or not state.startswith("+"):
            lacking.append((stream, entry_id, uuid, state, client.get(keys.stored(stream))))
    return lacking[:5]


FAULTS = (kill_a_master, graceful_failover, replica_down, reshard, stop_a_master,
          stop_mariadb, freeze_mariadb)


def test_a_seeded_schedule_of_cluster_and_database_faults_loses_nothing(
        gunicorn_server, ingest, cluster, database, mariadb_server):
    rounds = int(os.environ.get("OG_CHAOS_ROUNDS", "1"))
    rng = random.Random(int(os.environ.get("OG_CHAOS_SEED", "16")))
    settings = {"REDIS_URL": cluster.url, **SETTINGS}
    server = gunicorn_server("redis", workers=2, **settings)
    workers = [ingest(name=f"chaos-{i}", **settings).start() for i in range(2)]
    only = [name for name in os.environ.get("OG_CHAOS_FAULTS", "").split(",") if name]
    faults = [fault for fault in FAULTS if not only or fault.__name__ in only]
    schedule = [fault for _ in range(rounds) for fault in rng.sample(faults, len(faults))]
    done = []
    with Load(server.url, threads=6, seconds=150 * rounds, conversations=60_000 * rounds,
              seed=rng.randrange(1 << 30)) as load:
        load.wait_for(300)
        for fault in schedule:
            try:
                fault(cluster, mariadb_server, rng)
                cluster.ensure_healthy()
                mariadb_server.ensure_running()
            except Exception as error:
                raise AssertionError(f"{fault.__name__}, after {done}: {error}") from error
            done.append(fault.__name__)
            # Writes come back on every partition with no restart of anything.
            load.wait_for(len(load.snapshot()) + 300, timeout=RECOVERY_S)
            for worker in workers:
                assert worker.running, f"{worker.name} exited after {done}:\n{worker.log()}"
    assert set(load.statuses) <= {200, 503}, (load.statuses, load.reasons.most_common(5))

    # Every API process still answers, every worker still runs, and nothing was lost.
    http = Http(server.url)
    try:
        fresh = [new_uuid() for _ in range(50)]
        answers = [http.post("/initial", {"uuid": uuid, "symbol": "q"}) for uuid in fresh]
        assert [status for status, _ in answers] == [200] * 50, answers[:3]
        wait_all_drained(cluster.client(), workers[0], timeout=120)
        for worker in workers:
            assert worker.running, f"{worker.name} exited:\n{worker.log()}"
        stored = stored_events(database)
        assert len(stored) == len(set(stored)), "an event stored twice"
        missing = load.accepted - set(stored)
        assert not missing, f"{len(missing)} acknowledged events not stored, after {done}"
        invented = set(stored) - load.accepted - load.uncertain - {(u, "initial") for u in fresh}
        assert not invented, f"{len(invented)} events stored that were never accepted"
        not_recorded = load.not_recorded & set(stored)
        assert not not_recorded, f"{len(not_recorded)} events stored though answered 'not recorded'"
        assert_buckets_exact(database)
        try:
            assert_symbol_dashboards_match_events(http.get, database)
        except AssertionError as error:
            raise AssertionError(f"{error}; after {done}; followups Redis lacks: "
                                 f"{_followups_redis_lacks(cluster, database)}") from error
    finally:
        http.close()
