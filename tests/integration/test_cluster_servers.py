"""The Redis Cluster fixture itself: six real redis-server processes, three masters with a
replica each, that survive SIGKILL of a master (failover), restarts and resharding."""
import functools
import threading
import time

import redis as redislib
from redis.crc import key_slot

from harness.servers import CLUSTER_SLOTS


@functools.lru_cache(maxsize=1)
def _key_per_slot():
    """{slot: a key "k<i>" in that slot}, for all 16384 slots."""
    keys = {}
    i = 0
    while len(keys) < CLUSTER_SLOTS:
        key = f"k{i}"
        keys.setdefault(key_slot(key.encode()), key)
        i += 1
    return keys


def _keys_in(slots):
    keys = _key_per_slot()
    return [keys[slot] for slot in sorted(slots)]


def test_cluster_has_three_masters_with_one_replica_each(cluster):
    masters, replicas = cluster.masters(), cluster.replicas()
    assert len(cluster.nodes) == 6 and all(node.running for node in cluster.nodes)
    assert len(masters) == 3 and len(replicas) == 3
    assert set(masters) | set(replicas) == set(cluster.nodes)
    for master in masters:
        [replica] = cluster.replicas_of(master)
        assert cluster.master_of(replica) is master
        assert master.replication_info()["connected_slaves"] == 1
        assert replica.replication_info()["master_link_status"] == "up"
    # The masters' slots partition the whole slot space.
    owned = [cluster.slots_of(master) for master in masters]
    assert sum(len(slots) for slots in owned) == CLUSTER_SLOTS
    assert set().union(*owned) == set(range(CLUSTER_SLOTS))
    assert cluster.master_of_slot(0) in masters
    assert cluster.url == f"redis://127.0.0.1:{masters[0].port}/0"
    assert cluster.problems() == []
    for node in cluster.nodes:
        assert node.port + 10000 <= 65535
        client = node.client()
        try:
            assert client.info("cluster")["cluster_enabled"] == 1
            assert client.info("keyspace") == {}  # FLUSHALLed, replicas included
            config = client.config_get("*")
        finally:
            client.close()
        assert config["appendonly"] == "yes" and config["appendfsync"] == "always"
        assert config["save"] == "" and config["maxmemory-policy"] == "noeviction"
        assert config["cluster-node-timeout"] == str(cluster.node_timeout_ms)
        assert config["cluster-config-file"] == str(node.data_dir / "nodes.conf")


def test_writes_to_every_slot_read_back(cluster):
    client = cluster.client()
    keys = _key_per_slot()
    pipeline = client.pipeline()
    for slot, key in keys.items():
        pipeline.set(key, f"v{slot}")
    assert all(pipeline.execute())

    pipeline = client.pipeline()
    for key in keys.values():
        pipeline.get(key)
    assert pipeline.execute() == [f"v{slot}" for slot in keys]
    # Each master holds exactly the keys of its own slots.
    for master in cluster.masters():
        direct = master.client()
        try:
            assert direct.dbsize() == len(cluster.slots_of(master))
        finally:
            direct.close()


def test_killed_master_fails_over_and_keeps_acknowledged_writes(cluster):
    client = cluster.client()
    victim = cluster.master_of_slot(key_slot(b"k0"))
    [replica] = cluster.replicas_of(victim)
    victim_keys = _keys_in(sorted(cluster.slots_of(victim))[::8])
    other_keys = _keys_in(set(range(CLUSTER_SLOTS)) - cluster.slots_of(victim))[::8]

    # Written on one connection to the victim, so WAIT covers exactly these writes.
    direct = victim.client(single_connection_client=True)
    try:
        pipeline = direct.pipeline(transaction=False)
        for key in victim_keys:
            pipeline.set(key, f"before:{key}")
        assert all(pipeline.execute())
        assert direct.execute_command("WAIT", 1, 1000) == 1
    finally:
        direct.close()
    for key in other_keys:
        client.set(key, f"before:{key}")

    cluster.kill(victim)
    assert not victim.running
    promoted = cluster.wait_failover(victim)

    assert promoted is replica
    assert cluster.master_of_slot(key_slot(victim_keys[0].encode())) is promoted
    assert cluster.timings["failover"] < 15
    # The client made before the kill finds the new master by itself.
    for key in victim_keys + other_keys:
        assert client.get(key) == f"before:{key}"
    for key in victim_keys:
        assert client.set(key, f"after:{key}")
    assert [client.get(key) for key in victim_keys] == [f"after:{key}" for key in victim_keys]

    # Back on its port and dir, the old master rejoins as the new master's replica.
    cluster.restart(victim)
    assert cluster.master_of(victim) is promoted
    assert cluster.replicas_of(promoted) == [victim]
    cluster.ensure_healthy()
    assert [client.get(key) for key in victim_keys] == [f"after:{key}" for key in victim_keys]


def test_reshard_moves_slots_while_clients_write(cluster):
    source, target = cluster.masters()[:2]
    source_slots = sorted(cluster.slots_of(source))
    seeded = _keys_in(source_slots)
    client = cluster.client()
    pipeline = client.pipeline()
    for key in seeded:
        pipeline.set(key, f"seed:{key}")
    assert all(pipeline.execute())

    # A writer hammering keys in the slots about to move (redis-cli moves the lowest
    # slots of the source first) and around them, checking it reads its own writes.
    hot = _keys_in(source_slots[:300])
    stop, errors, last, rounds = threading.Event(), [], {}, [0]

    def write_under_load():
        writer = cluster.client()
        try:
            while not stop.is_set():
                rounds[0] += 1
                for key in hot:
                    value = f"r{rounds[0]}:{key}"
                    writer.set(key, value)
                    last[key] = value
                    if writer.get(key) != value:
                        errors.append(f"{key} did not read back {value}")
        except Exception as error:  # reported by the test below
            errors.append(repr(error))

    thread = threading.Thread(target=write_under_load, daemon=True)
    thread.start()
    try:
        time.sleep(0.2)
        moved = cluster.reshard(200, source, target)
        time.sleep(0.2)
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()

    assert errors == []
    assert rounds[0] >= 2
    assert len(moved) == 200 and set(moved) <= set(source_slots)
    assert cluster.master_of_slot(moved[0]) is target and cluster.master_of_slot(moved[-1]) is target
    assert not set(moved) & cluster.slots_of(source)
    assert set(moved) <= cluster.slots_of(target)
    pipeline = client.pipeline()
    for key in seeded:
        pipeline.get(key)
    assert pipeline.execute() == [last.get(key, f"seed:{key}") for key in seeded]
    assert cluster.problems() == []


def test_restore_brings_back_killed_nodes_without_a_rebuild(cluster):
    ports, rebuilds = [node.port for node in cluster.nodes], cluster.rebuilds
    master, other_master = cluster.masters()[:2]
    [other_replica] = cluster.replicas_of(other_master)
    client = cluster.client()
    client.set("k0", "kept")
    cluster.kill(master)
    cluster.kill(other_replica)

    cluster.restore()

    assert cluster.rebuilds == rebuilds
    assert [node.port for node in cluster.nodes] == ports
    assert cluster.problems() == []
    assert len(cluster.masters()) == 3
    assert all(len(cluster.replicas_of(node)) == 1 for node in cluster.masters())
    assert client.get("k0") == "kept"


def test_restore_builds_a_new_cluster_when_healing_fails(cluster):
    # A node that lost its nodes.conf and data is a stranger to the cluster: not healable.
    node = cluster.nodes[-1]
    cluster.kill(node)
    for path in node.data_dir.iterdir():
        if path.name != node.log_path.name:
            if path.is_dir():
                for inner in path.iterdir():
                    inner.unlink()
                path.rmdir()
            else:
                path.unlink()
    old_ports, rebuilds = {node.port for node in cluster.nodes}, cluster.rebuilds

    cluster.restore(timeout=3)

    assert cluster.rebuilds == rebuilds + 1
    assert cluster.problems() == []
    assert all(node.running for node in cluster.nodes)
    assert not old_ports & {node.port for node in cluster.nodes}
    client = cluster.client()
    client.set("k0", "new")
    assert client.get("k0") == "new"
    assert isinstance(client, redislib.RedisCluster)
