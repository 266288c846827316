"""Concurrent requests through gunicorn (gevent, 2 workers) on the redis backend: no count
is lost or doubled, whichever worker and whichever coalesced pipeline carries a request."""
import threading
import time

from tests.workers import (Http, assert_stored_exactly, drain, get_json, new_uuid,
                           stored_rows)

THREADS = 100
PER_THREAD = 4
TIMEOUT_S = 60.0


def concurrently(url, requests):
    """POST every (path, body) from THREADS threads released together; the statuses."""
    statuses = [None] * len(requests)
    barrier = threading.Barrier(THREADS)

    def run(offset):
        client = Http(url)
        try:
            barrier.wait(TIMEOUT_S)
            for index in range(offset, len(requests), THREADS):
                statuses[index] = client.post(*requests[index])[0]
        finally:
            client.close()

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + TIMEOUT_S
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "requests did not finish in time"
    return statuses


def test_concurrent_initials_and_followups_on_one_symbol_lose_no_count(
        gunicorn_server, redis, database, env, redis_server, mariadb_server):
    env(REDIS_URL=redis_server.url, DATABASE_URL=mariadb_server.url)
    server = gunicorn_server("redis", workers=2)
    conversations = [new_uuid() for _ in range(THREADS * PER_THREAD)]

    statuses = concurrently(server.url, [("/initial", {"uuid": c, "symbol": "c"})
                                         for c in conversations])
    started = [c for c, status in zip(conversations, statuses) if status == 200]
    assert statuses.count(200) == len(conversations), sorted(set(statuses), key=str)
    board = get_json(server.url, "/dashboard/symbol/c")[1]
    assert board["count"] == len(started)

    statuses = concurrently(server.url, [("/followup", {"uuid": c}) for c in started])
    followed = [c for c, status in zip(started, statuses) if status == 200]
    assert len(followed) == len(started), sorted(set(statuses), key=str)
    board = get_json(server.url, "/dashboard/symbol/c")[1]
    assert (board["count"], board["followups"]) == (len(started), len(followed))

    drain()
    assert_stored_exactly(database, {(c, "initial") for c in started}
                          | {(c, "followup") for c in followed})
    initial_ts = [r["ts"] for r in stored_rows(database) if r["kind"] == "initial"]
    assert (board["earliest"], board["latest"]) == (
        min(initial_ts).isoformat(" ", "microseconds"),
        max(initial_ts).isoformat(" ", "microseconds"))


def test_concurrent_repeats_of_one_uuid_count_once(gunicorn_server, redis, database, env,
                                                   redis_server, mariadb_server):
    env(REDIS_URL=redis_server.url, DATABASE_URL=mariadb_server.url)
    server = gunicorn_server("redis", workers=2)
    conversation = new_uuid()
    symbols = "defg"
    statuses = concurrently(server.url, [
        ("/initial", {"uuid": conversation if i % 2 else conversation.upper(),
                      "symbol": symbols[i % 4]}) for i in range(THREADS)])
    assert sorted(statuses) == [200] + [409] * (THREADS - 1)
    statuses = concurrently(server.url, [("/followup", {"uuid": conversation})] * THREADS)
    assert sorted(statuses) == [200] + [409] * (THREADS - 1)

    boards = [get_json(server.url, f"/dashboard/symbol/{s}")[1] for s in symbols]
    assert sum(b["count"] for b in boards) == 1
    assert sum(b["followups"] for b in boards) == 1
    drain()
    assert_stored_exactly(database, {(conversation, "initial"), (conversation, "followup")})
