"""Redis states and store defects, each against real redis-server and mariadbd processes:
what is answered, what is stored, what is left pending. Each test failed on the code
before the store gateway (core/store/)."""
import random
import shutil
import time
import zlib

import pytest
from redis.exceptions import ResponseError

from core import event_store, keys
from core.store.codec import Rows
from core.store.gateway import Store
from ingest import rebuild
from ingest.writer import EventWriter
from tests.range_oracle import assert_buckets_exact
from harness.servers import RedisServer
from tests.workers import STREAM, append_events, drain, new_uuid, stored_counts, stored_events

SYMBOLS = "abcdefghijklmnopqrstuvwxyz"


def store_on(redis_server, partitions=1):
    return Store.connect(redis_server.url, partitions, timeout=5)


def lengths(redis, partitions):
    return [redis.xlen(keys.stream(p)) for p in range(partitions)]


# --- the partition count is checked on every write -------------------------------------


def test_a_process_older_than_a_partition_count_change_is_refused_not_stranded(
        make_app, redis, redis_server, database):
    api = make_app("redis", OG_STREAM_PARTITIONS=2)
    started = new_uuid()
    assert api.client.post("/initial", json={"uuid": started, "symbol": "a"}).status_code == 200
    drain()
    # `ingest rebuild` with OG_STREAM_PARTITIONS=3, while this API process still runs with 2.
    rebuild.rebuild(store_on(redis_server, 3), database, 3)
    before = lengths(redis, 3)

    for path, body in (("/initial", {"uuid": new_uuid(), "symbol": "b"}),
                       ("/followup", {"uuid": started})):
        answer = api.client.post(path, json=body)
        assert answer.status_code == 503, answer.get_json()
        assert "OG_STREAM_PARTITIONS=2" in answer.get_json()["error"]
    assert lengths(redis, 3) == before  # nothing appended where no worker reads


# --- the worker's scripts ----------------------------------------------------------------


def test_an_entry_that_cannot_be_dead_lettered_stays_pending(redis, redis_server):
    store = store_on(redis_server)
    store.create_groups()
    redis.xadd(STREAM, {"kind": "bogus"})
    [(partition, entry_id, fields)] = store.read("w", 10)
    redis.set(keys.dead_letters(0), "not a stream")  # the copy will fail
    with pytest.raises(ResponseError):
        store.bury(partition, entry_id, fields, "malformed: bad kind")
    assert redis.xpending(STREAM, keys.GROUP)["pending"] == 1  # still claimable, not lost

    redis.delete(keys.dead_letters(0))
    assert store.bury(partition, entry_id, fields, "malformed: bad kind")
    assert redis.xpending(STREAM, keys.GROUP)["pending"] == 0
    [(_, copied)] = redis.xrange(keys.dead_letters(0))
    assert copied["entry_id"] == entry_id and copied["kind"] == "bogus"


def test_the_undrained_counter_is_trued_up_while_entries_are_pending(redis, redis_server):
    store = store_on(redis_server)
    store.create_groups()
    append_events(redis, 100)
    assert len(store.read("w", 10)) == 10  # 10 pending, 90 not yet delivered
    redis.set(keys.undrained(0), 20)  # drifted (a lost ack, a hand-made XADD...)
    store.trim([0])
    assert int(redis.get(keys.undrained(0))) == 100


# --- og.events -----------------------------------------------------------------------------


def test_an_event_id_stored_for_another_event_is_dead_lettered_not_dropped(make_app, redis, database):
    make_app("redis")  # the worker's settings
    writer = EventWriter(event_store.build_engine(database.url))
    writer.create_tables()
    first, second = new_uuid(), new_uuid()
    ts = str(int(time.time() * 1e6))
    entry_id = f"{ts[:13]}-0"
    stored = {"kind": "initial", "uuid": first, "symbol": "a", "guess": "1", "ts": ts, "cts": ts}
    assert writer.write([Rows().row(0, entry_id, stored)]) == (1, [])
    # A forced failover to a node whose clock was behind gives another event that id.
    redis.xadd(STREAM, {**stored, "uuid": second, "symbol": "b"}, id=entry_id)

    drain()
    assert stored_events(database) == [(first, "initial")]
    [(_, buried)] = redis.xrange(keys.dead_letters(0))
    assert buried["uuid"] == second and "collision" in buried["reason"]
    assert redis.xpending(STREAM, keys.GROUP)["pending"] == 0


def _forged_uuids(count, seed=0):
    """`count` distinct uuids with one CRC32 (CRC32 is linear over GF(2): the low two bits
    of 32 hex digits give 64 unknowns for its 32 bits, solved with random free ones)."""
    rng = random.Random(seed)
    base = "00000000-0000-0000-0000-000000000000"
    places = [i for i, c in enumerate(base) if c == "0"]
    zero = zlib.crc32(base.encode())

    def flipped(place, bit):
        text = bytearray(base.encode())
        text[place] ^= 1 << bit
        return zlib.crc32(bytes(text)) ^ zero

    columns = [(place, bit, flipped(place, bit)) for place in places for bit in (0, 1)]
    target = zlib.crc32(b"the key every forged uuid shares")
    made = set()
    while len(made) < count:
        free = {i: rng.getrandbits(1) for i in range(32, 64)}
        # Solve the 32 pivots by elimination on rows (crc bit) x columns (unknown).
        rows = []
        for bit in range(32):
            row = sum(((columns[i][2] >> bit) & 1) << i for i in range(64))
            value = ((target ^ zero) >> bit) & 1
            rows.append([row, value])
        for i, v in free.items():
            for r in rows:
                if (r[0] >> i) & 1:
                    r[0] &= ~(1 << i)
                    r[1] ^= v
        solution, pivot_row = dict(free), 0
        pivots = []
        for col in range(32):
            hit = next((r for r in range(pivot_row, 32) if (rows[r][0] >> col) & 1), None)
            if hit is None:
                continue
            rows[pivot_row], rows[hit] = rows[hit], rows[pivot_row]
            for r in range(32):
                if r != pivot_row and (rows[r][0] >> col) & 1:
                    rows[r][0] ^= rows[pivot_row][0]
                    rows[r][1] ^= rows[pivot_row][1]
            pivots.append((col, pivot_row))
            pivot_row += 1
        if any(r[0] == 0 and r[1] for r in rows):
            continue  # inconsistent for these free bits
        for col, r in pivots:
            solution[col] = rows[r][1]
        for col in range(32):
            solution.setdefault(col, 0)
        text = bytearray(base.encode())
        for i, (place, bit, _) in enumerate(columns):
            if solution[i]:
                text[place] ^= 1 << bit
        uuid = text.decode()
        assert zlib.crc32(text) == target
        made.add(uuid)
    return sorted(made)


def test_a_lookup_reads_one_row_however_many_uuids_a_client_made_collide(make_app, database):
    make_app("redis")
    writer = EventWriter(event_store.build_engine(database.url))
    writer.create_tables()
    forged = _forged_uuids(1001)
    ts = str(int(time.time() * 1e6))
    rows = Rows()
    writer.write([rows.row(0, f"{int(ts[:13]) + i}-0",
                           {"kind": "initial", "uuid": uuid, "symbol": "a", "guess": "1",
                            "ts": ts, "cts": ts})
                  for i, uuid in enumerate(forged[:1000])])
    with database.connect() as connection:
        def rows_read():
            return sum(int(value) for name, value in connection.exec_driver_sql(
                "SHOW SESSION STATUS WHERE Variable_name IN "
                "('Handler_read_key', 'Handler_read_next', 'Handler_read_prev')"))

        before = rows_read()
        assert event_store.find_conversation(connection, forged[1000]) is None  # unknown
        found = event_store.find_conversation(connection, forged[7])
        read = rows_read() - before
    assert found is not None and found[0] == "a"
    assert read < 20, f"{read} index reads for two lookups"


# --- a demoted master --------------------------------------------------------------------


def _in_sync(replica, timeout=20.0):
    deadline = time.monotonic() + timeout
    while replica.client().info("replication").get("master_link_status") != "up":
        assert time.monotonic() < deadline, "replica never synced"
        time.sleep(0.05)


def test_a_demoted_master_under_wait_is_503_then_200_again_without_a_restart(make_app, tmp_path):
    first = RedisServer(tmp_path / "first").start()
    second = RedisServer(tmp_path / "second").start()
    try:
        second.client().replicaof("127.0.0.1", first.port)
        _in_sync(second)
        api = make_app("redis", REDIS_URL=first.url, OG_REDIS_WAIT_REPLICAS=1)
        post = lambda: api.client.post("/initial", json={"uuid": new_uuid(), "symbol": "e"})  # noqa: E731
        assert post().status_code == 200

        # The master REDIS_URL names becomes a replica (as CLUSTER FAILOVER or a sentinel
        # would do): WAIT answers an error there, and every write is refused.
        second.client().replicaof("NO", "ONE")
        first.client().replicaof("127.0.0.1", second.port)
        _in_sync(first)
        during = [post() for _ in range(100)]  # more batches than a pool has connections
        assert {answer.status_code for answer in during} == {503}, [
            answer.get_json() for answer in during if answer.status_code != 503][:3]
        assert all("not recorded" in answer.get_json()["error"] for answer in during)

        first.client().replicaof("NO", "ONE")
        second.client().replicaof("127.0.0.1", first.port)
        _in_sync(second)
        assert [post().status_code for _ in range(20)] == [200] * 20
    finally:
        second.stop()
        first.stop()


# --- Redis went back in time -------------------------------------------------------------


def _warm(api):
    """Until the in-process API answers again after its Redis restarted."""
    deadline = time.monotonic() + 10
    while api.client.get("/dashboard/symbol/a").status_code != 200:
        assert time.monotonic() < deadline, "the API never answered again"
        time.sleep(0.05)


def test_events_redis_lost_but_og_events_holds_are_given_back_and_not_accepted_twice(
        make_app, tmp_path, database):
    server = RedisServer(tmp_path / "redis").start()
    try:
        api = make_app("redis", REDIS_URL=server.url)
        post = lambda path, uuid, **more: api.client.post(  # noqa: E731
            path, json={"uuid": uuid, **more}).status_code
        older = [new_uuid() for _ in range(6)]
        assert [post("/initial", u, symbol="o") for u in older] == [200] * 6
        drain()
        # What Redis will come back with: everything up to here.
        server.stop()
        snapshot = tmp_path / "snapshot"
        shutil.copytree(server.data_dir / "appendonlydir", snapshot)
        server.start()
        _warm(api)
        newer = [new_uuid() for _ in range(4)]
        assert [post("/followup", u) for u in older[:3]] == [200] * 3
        assert [post("/initial", u, symbol="n") for u in newer] == [200] * 4
        drain()  # og.events holds them all
        # Redis loses the last writes (as the last second of an everysec AOF, or a
        # failover to a replica that lagged), with og.events already holding them.
        server.stop()
        shutil.rmtree(server.data_dir / "appendonlydir")
        shutil.copytree(snapshot, server.data_dir / "appendonlydir")
        server.start()
        _warm(api)

        worker = drain()  # the worker finds what Redis lost and gives it back
        assert [post("/followup", u) for u in older[:3]] == [409] * 3
        assert [post("/initial", u, symbol="n") for u in newer] == [409] * 4
        assert worker.replayed == 7 and worker.duplicates == 0
        assert post("/followup", older[3]) == 200  # one not followed up is still open
        drain()
        counts = {symbol: (n, f) for symbol, (n, f) in stored_counts(database).items()}
        for symbol in "no":
            body = api.client.get(f"/dashboard/symbol/{symbol}").get_json()
            assert (body["count"], body["followups"]) == counts[symbol], (symbol, body)
    finally:
        server.stop()


def test_a_batch_holding_an_entry_twice_counts_it_once(make_app, database):
    make_app("redis")
    writer = EventWriter(event_store.build_engine(database.url))
    writer.create_tables()
    ts = str(int(time.time() * 1e6))
    rows = Rows()
    first = rows.row(0, f"{ts[:13]}-0", {"kind": "initial", "uuid": new_uuid(), "symbol": "d",
                                         "guess": "0", "ts": ts, "cts": ts})
    second = rows.row(0, f"{ts[:13]}-1", {"kind": "initial", "uuid": new_uuid(), "symbol": "d",
                                          "guess": "0", "ts": ts, "cts": ts})
    assert writer.write([first]) == (1, [])
    # The careful path (a row already stored) with the new row in the batch twice.
    assert writer.write([first, second, second]) == (1, [])
    assert_buckets_exact(database)
