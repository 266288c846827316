"""Operating on a bad day (issue 11): `ingest rebuild` with the API serving, and
backpressure that measures the undrained backlog rather than the stream's length."""
import time
from collections import Counter

import sqlalchemy

from core import keys
from core.store.gateway import Store
from ingest import rebuild
from tests.range_oracle import assert_buckets_exact
from tests.workers import (STREAM, Http, Load, assert_nothing_lost, get_json, new_uuid,
                           run_ingest, symbol_dashboards, wait_drained)


def dashboards_from_events(engine):
    """{symbol: (count, followups, earliest, latest)} as og.events says."""
    with engine.connect() as connection:
        rows = connection.execute(sqlalchemy.text(
            "SELECT symbol, SUM(kind = 'initial'), SUM(kind = 'followup'),"
            " DATE_FORMAT(MIN(IF(kind = 'initial', ts, NULL)), '%Y-%m-%d %H:%i:%S.%f'),"
            " DATE_FORMAT(MAX(IF(kind = 'initial', ts, NULL)), '%Y-%m-%d %H:%i:%S.%f')"
            " FROM events GROUP BY symbol"))
        return {s: (int(n), int(f), lo, hi) for s, n, f, lo, hi in rows}


def followups_per_uuid(engine):
    with engine.connect() as connection:
        return Counter({uuid: n for uuid, n in connection.execute(sqlalchemy.text(
            "SELECT uuid, COUNT(*) FROM events WHERE kind = 'followup' GROUP BY uuid"))})


def test_rebuild_under_load_is_exact_and_accepts_each_followup_once(
        gunicorn_server, redis, database, ingest):
    server = gunicorn_server("redis", workers=2)
    worker = ingest().start(redis)
    with Load(server.url, threads=6, seconds=60, conversations=30_000) as load:
        load.wait_for(1500)
        rebuilds = []
        for _ in range(3):  # each rebuild a while after the last one's fence ended
            result = run_ingest("rebuild", REDIS_URL=server.env["REDIS_URL"],
                                DATABASE_URL=server.env["DATABASE_URL"])
            assert result.returncode == 0, result.stdout + result.stderr
            rebuilds.append(result.stdout)
            load.wait_for(len(load.snapshot()) + 500)
        # A followup accepted before the rebuilds may be retried by hand after them:
        # it must still be a 409.
        followed = [c for c, kind in load.snapshot() if kind == "followup"][:50]
    client = Http(server.url)
    try:
        assert {client.post("/followup", {"uuid": c})[0] for c in followed} == {409}
    finally:
        client.close()
    fenced = sum(n for reason, n in load.reasons.items() if "being rebuilt" in reason)
    assert fenced > 0, (load.statuses, load.reasons.most_common(3))  # the fence was met
    assert set(load.statuses) <= {200, 503}, load.statuses
    assert not redis.keys("og:*:fence")

    wait_drained(redis, worker)
    database.dispose()
    assert_nothing_lost(database, load.accepted, load.uncertain)
    assert max(followups_per_uuid(database).values()) == 1
    stored = dashboards_from_events(database)
    boards = symbol_dashboards(lambda path: get_json(server.url, path))
    assert {s: (b["count"], b["followups"], b["earliest"], b["latest"])
            for s, b in boards.items() if b["count"]} == stored
    assert_buckets_exact(database)
    assert worker.terminate() == 0


def test_a_crashed_rebuild_fences_writes_only_until_its_fence_expires(gunicorn_server, redis,
                                                                   redis_server):
    server = gunicorn_server("redis", workers=1)
    client = Http(server.url)
    store = Store.connect(redis_server.url, 1, timeout=2)
    fence = rebuild.Fence(store, partitions=1, ttl_ms=1500)
    try:
        fence.__enter__()
        fence._stop.set()  # the rebuild dies: nobody extends or releases its fence
        status, answer = client.post("/initial", {"uuid": new_uuid(), "symbol": "a"})
        assert status == 503 and "being rebuilt" in answer["error"], (status, answer)
        assert redis.xlen(STREAM) == 0  # not recorded
        deadline = time.monotonic() + 5
        while client.post("/initial", {"uuid": new_uuid(), "symbol": "a"})[0] != 200:
            assert time.monotonic() < deadline, "writes stayed fenced after the fence's TTL"
            time.sleep(0.1)
        # A rebuild cannot start while another one's fence is held.
        fence = rebuild.Fence(store, partitions=1)
        fence.__enter__()
        try:
            second = rebuild.Fence(store, partitions=1)
            try:
                second.__enter__()
                raise AssertionError("a second fence was granted")
            except rebuild.RebuildRefused as refused:
                assert "another" in str(refused)
        finally:
            fence.__exit__(None, None, None)
        assert not redis.exists(keys.fence(0))
    finally:
        client.close()


def test_a_dead_workers_pending_entries_are_no_backlog(gunicorn_server, redis, database, ingest):
    # The scenario: two workers, one killed under load. What it held stays pending
    # (the claim interval is long), so acknowledged entries behind it cannot be trimmed
    # and XLEN climbs past the mark; the undrained backlog does not.
    mark = 2000
    server = gunicorn_server("redis", workers=2, OG_BACKLOG_HIGH_WATER=mark)
    settings = {"OG_INGEST_CLAIM_IDLE_MS": 120_000, "OG_INGEST_BATCH_SIZE": 200}
    survivor = ingest(name="survivor", **settings).start(redis)
    victim = ingest(name="victim", **settings).start(redis)
    with Load(server.url, threads=6, seconds=60, conversations=40_000) as load:
        load.wait_for(500)
        deadline = time.monotonic() + 10
        while not redis.xpending_range(STREAM, keys.GROUP, min="-", max="+", count=1,
                                       consumername=victim.consumer):
            assert time.monotonic() < deadline, "the victim never held an entry"
            time.sleep(0.001)
        victim.kill()
        before = len(load.snapshot())
        load.wait_for(before + 3 * mark, timeout=60)
        length = redis.xlen(STREAM)
    assert length > mark, f"the stream never outgrew the mark ({length}); the test proves nothing"
    assert set(load.statuses) == {200}, (load.statuses, load.reasons.most_common(3))

    # With no worker at all, the backlog is real and writes are shed at the mark.
    assert survivor.terminate() == 0
    client = Http(server.url)
    try:
        shed = accepted = 0
        while not shed:
            status, answer = client.post("/initial", {"uuid": new_uuid(), "symbol": "b"})
            if status == 200:
                accepted += 1
            else:
                assert status == 503 and "backlog" in answer["error"], (status, answer)
                shed += 1
            assert accepted <= mark, "accepted past the mark with no worker running"
    finally:
        client.close()
    assert int(redis.get(keys.undrained(0))) >= mark

