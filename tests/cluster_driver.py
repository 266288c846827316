"""Helpers of the Redis Cluster tests: the state of every partition's stream, bounded
drains, and the dashboards compared with og.events."""
import time

from redis.exceptions import RedisError, ResponseError

from core import keys
from tests.workers import POLL_S, stored_counts

PARTITIONS = 12
"""Partitions in the cluster tests: several per master, as the README advises."""


def partitions_state(client, partitions=PARTITIONS):
    """{partition: (length, lag, pending)} of each stream of the ingest group."""
    state = {}
    for partition in range(partitions):
        stream = keys.stream(partition)
        try:
            length = client.xlen(stream)
            groups = client.xinfo_groups(stream) if length or client.exists(stream) else []
        except ResponseError:
            state[partition] = (0, None, 0)
            continue
        group = next((g for g in groups if g["name"] == keys.GROUP), None)
        state[partition] = (length, group["lag"], group["pending"]) if group else (length, None, 0)
    return state


def undrained_detail(client, state):
    """What a failure message needs of each stream still holding entries: its entries'
    ids, the stream's last id, the group's last-delivered id and pending entries."""
    lines = []
    for partition, value in state.items() if isinstance(state, dict) else ():
        if not value[0] and not value[2]:
            continue
        stream = keys.stream(partition)
        try:
            ids = [entry_id for entry_id, _ in client.xrange(stream, count=10)]
            info = client.xinfo_stream(stream)
            groups = client.xinfo_groups(stream)
            pending = client.xpending_range(stream, keys.GROUP, "-", "+", 10)
        except RedisError as error:
            lines.append(f"partition {partition}: {error!r}")
            continue
        lines.append(f"partition {partition}: entries {ids}, last-generated-id "
                     f"{info.get('last-generated-id')}, groups {groups}, pending {pending}")
    return "\n".join(lines)


def wait_all_drained(client, worker=None, partitions=PARTITIONS, timeout=60.0, cluster=None):
    """Until every partition's stream is empty, with no lag and nothing pending.

    With `cluster` (a harness RedisCluster), a Redis error makes the next read use a new
    client that learns the slot map from a running node picked in turn (not always the
    one the first client started from, which may be the node just restarted), and a
    failure message says what the nodes say of the cluster."""
    deadline = time.monotonic() + timeout
    tries = 0
    while True:
        try:
            state = partitions_state(client, partitions)
            # Empty with nothing pending: drained. (Not XINFO's lag: after a failover Redis
            # 7.0 has been seen to report a lag on an empty stream; core/pipeline.py.)
            if all(length == 0 and pending == 0 for length, _, pending in state.values()):
                return
        except RedisError as error:
            state = repr(error)
            if cluster is not None:
                tries += 1
                running = [node for node in cluster.nodes if node.running]
                node = running[tries % len(running)]
                client = cluster.client(node)
        if worker is not None:
            assert worker.running, f"ingest worker exited:\n{worker.log()}"
        assert time.monotonic() < deadline, f"not drained in {timeout} s: {state}" + (
            f"\n{undrained_detail(client, state)}"
            + (f"\ncluster: {cluster.problems()}" if cluster is not None else "")
            + (f"\n{worker.log()}" if worker else ""))
        time.sleep(POLL_S)


def assert_symbol_dashboards_match_events(get, engine):
    """/dashboard/symbol of every symbol says what og.events holds."""
    counts = stored_counts(engine)
    for symbol in "abcdefghijklmnopqrstuvwxyz":
        status, body = get(f"/dashboard/symbol/{symbol}")
        assert status == 200, (symbol, status, body)
        assert (body["count"], body["followups"]) == counts.get(symbol, (0, 0)), (
            symbol, body, "og.events:", counts.get(symbol))
