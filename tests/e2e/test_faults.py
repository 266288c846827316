"""Lose nothing: the API (gunicorn, redis backend) under load while the ingest worker,
MariaDB or Redis is killed or stopped. Each test checks, after a drain, that og.events
holds every event the API answered 200 to, once, and nothing it did not accept."""
import http.client
import os
import random
import signal
import threading
import time
from string import ascii_lowercase

import pytest
from prometheus_client.parser import text_string_to_metric_families

from core import keys
from tests.range_oracle import assert_buckets_exact
from harness.servers import free_port
from tests.workers import (DEAD, STREAM, Http, Load, assert_nothing_lost, assert_stored_exactly,
                           get_json, group_state, new_uuid, stored_counts, stored_events,
                           symbol_dashboards, wait_drained)

OUTAGE_S = 3.0
"""How long a store stays down under load: long enough for backoff and backlog to matter."""
ANSWER_BOUND_S = 5.0
"""A request during an outage must be answered (503) within this; it must never hang."""


def scrape(port):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
    finally:
        connection.close()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_killed_workers_lose_and_duplicate_nothing(gunicorn_server, redis, database, ingest):
    server = gunicorn_server("redis", workers=2)
    rng = random.Random()
    settings = {"OG_INGEST_CLAIM_IDLE_MS": 500, "OG_INGEST_BATCH_SIZE": 50}
    left_pending = []
    with Load(server.url, threads=6, seconds=60) as load:
        load.wait_for(200)
        for _ in range(5):
            worker = ingest(**settings).start(redis).wait_reading(redis)
            time.sleep(rng.uniform(0.0, 1.0))
            assert worker.running, worker.log()
            worker.kill()
            left_pending.append(len(redis.xpending_range(
                STREAM, keys.GROUP, min="-", max="+", count=10_000,
                consumername=worker.consumer)))
        load.wait_for(len(load.snapshot()) + 100)
    assert set(load.statuses) == {200}, load.statuses
    # Non-vacuous: kills caught workers holding entries read but not yet acknowledged.
    assert sum(left_pending) > 0, left_pending

    fresh = ingest(**settings).start(redis)
    wait_drained(redis, fresh)
    assert_stored_exactly(database, load.accepted)
    assert_buckets_exact(database)  # reclaimed batches were counted once in the range buckets
    assert redis.xlen(DEAD) == 0
    assert fresh.terminate() == 0


def test_mariadb_outage_under_load_loses_nothing(gunicorn_server, redis, database,
                                                 mariadb_server, ingest):
    server = gunicorn_server("redis", workers=2)
    port = free_port()
    worker = ingest(OG_INGEST_METRICS_PORT=port, OG_INGEST_CLAIM_IDLE_MS=1000).start(redis)
    with Load(server.url, threads=4, seconds=60, pause_s=0.002) as load:
        load.wait_for(300)
        mariadb_server.stop()
        try:
            during = len(load.snapshot())
            time.sleep(OUTAGE_S)
            # The API does not need MariaDB to accept events; they wait in the stream.
            assert len(load.snapshot()) > during + 100
            assert group_state(redis)[0] > 0
            assert worker.running, worker.log()
        finally:
            mariadb_server.start()
        load.wait_for(len(load.snapshot()) + 200)
    assert set(load.statuses) == {200}, load.statuses

    wait_drained(redis, worker)
    database.dispose()  # its pooled connections died with the server
    assert_stored_exactly(database, load.accepted)
    assert_buckets_exact(database)
    retries = scrape(port).get(("og_ingest_retries_total", (("reason", "database"),)), 0)
    assert retries >= 1
    assert worker.terminate() == 0


def test_redis_crash_under_load_loses_no_acknowledged_event(gunicorn_server, redis, database,
                                                            redis_server, ingest):
    server = gunicorn_server("redis", workers=2)
    worker = ingest(OG_INGEST_CLAIM_IDLE_MS=1000).start(redis)
    with Load(server.url, threads=4, seconds=60, pause_s=0.002) as load:
        load.wait_for(500)
        redis_server.kill()  # SIGKILL; the AOF is fsynced at every write
        acknowledged_before_crash = load.snapshot()
        time.sleep(1.5)
        redis_server.start()
        load.wait_for(len(load.snapshot()) + 300)  # the API recovers by itself
    assert load.statuses[503] > 0, "the outage was not seen"
    assert set(load.statuses) <= {200, 503}, load.statuses

    # The same worker process reconnects and drains.
    wait_drained(redis, worker)
    assert worker.running
    rows = set(stored_events(database))
    assert acknowledged_before_crash <= rows
    assert_nothing_lost(database, load.accepted, load.uncertain)
    assert_buckets_exact(database)

    # The aggregates survived the crash with the events: they count exactly what the
    # stream delivered to og.events, which is at least everything acknowledged.
    boards = symbol_dashboards(lambda path: get_json(server.url, path))
    stored = stored_counts(database)
    accepted = load.accepted_counts()
    for symbol in ascii_lowercase:
        board = boards[symbol]
        assert (board["count"], board["followups"]) == stored.get(symbol, (0, 0)), symbol
        n, f = accepted.get(symbol, (0, 0))
        assert board["count"] >= n and board["followups"] >= f, symbol
    assert worker.terminate() == 0


@pytest.mark.parametrize("outage", ["killed", "frozen"])
def test_api_answers_503_quickly_while_redis_is_down(gunicorn_server, redis, redis_server,
                                                     outage):
    server = gunicorn_server("redis", workers=2)
    known = new_uuid()
    client = Http(server.url)
    try:
        assert client.post("/initial", {"uuid": known, "symbol": "a"})[0] == 200
        if outage == "killed":
            redis_server.kill()
        else:
            os.kill(redis_server.pid, signal.SIGSTOP)  # up, but answers nothing
        try:
            requests = [("POST", "/initial", {"uuid": new_uuid(), "symbol": "a"}),
                        ("POST", "/followup", {"uuid": known}),
                        ("GET", "/dashboard/symbol/a", None)]
            for method, path, body in requests:
                started = time.monotonic()
                status, answer = client.request(method, path, body)
                elapsed = time.monotonic() - started
                assert status == 503, (path, status, answer)
                assert list(answer) == ["error"] and isinstance(answer["error"], str)
                assert elapsed < ANSWER_BOUND_S, (path, elapsed)
                if method == "POST":  # the client is told whether a retry could duplicate
                    said = answer["error"]
                    assert "not recorded" in said or "outcome unknown" in said, said
                    if "outcome unknown" in said:  # sent, never answered: says how to tell
                        assert "409" in said, said
            # Many at once: every one answered within the bound, none hangs.
            answers = concurrent_answers(server.url, requests * 20)
            assert {status for status, _ in answers} == {503}
            assert max(elapsed for _, elapsed in answers) < ANSWER_BOUND_S
        finally:
            if outage == "killed":
                redis_server.start()
            else:
                os.kill(redis_server.pid, signal.SIGCONT)
        # Back to normal without a restart of the API (a few 503s while reconnecting).
        deadline = time.monotonic() + 10
        while client.get("/dashboard/symbol/a")[0] != 200:
            assert time.monotonic() < deadline, "the API did not recover"
            time.sleep(0.05)
        assert client.post("/initial", {"uuid": new_uuid(), "symbol": "b"})[0] == 200
    finally:
        client.close()


def concurrent_answers(url, requests):
    answers = []
    lock = threading.Lock()

    def run(method, path, body):
        client = Http(url)
        started = time.monotonic()
        try:
            status, _ = client.request(method, path, body)
        finally:
            client.close()
        with lock:
            answers.append((status, time.monotonic() - started))

    threads = [threading.Thread(target=run, args=request, daemon=True) for request in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(ANSWER_BOUND_S * 3)
    assert len(answers) == len(requests), "some requests hung"
    return answers


def test_worker_survives_a_redis_outage_and_drains_what_comes_after(
        gunicorn_server, redis, database, redis_server, ingest):
    server = gunicorn_server("redis", workers=2)
    worker = ingest(OG_INGEST_CLAIM_IDLE_MS=1000).start(redis)
    with Load(server.url, threads=2, conversations=100) as load:
        load.join()
    wait_drained(redis, worker)
    before = load.snapshot()
    assert_stored_exactly(database, before)

    redis_server.kill()
    time.sleep(OUTAGE_S)
    assert worker.running, worker.log()
    redis_server.start()

    with Load(server.url, threads=2, conversations=100) as after:
        after.join()
    wait_drained(redis, worker)
    assert worker.running
    assert_nothing_lost(database, before | after.accepted, after.uncertain)
    assert_buckets_exact(database)
    assert after.statuses[200] >= 100
    assert worker.terminate() == 0


def test_backlog_over_the_high_water_mark_sheds_load_and_recovers_by_itself(
        gunicorn_server, redis, database, mariadb_server, ingest):
    mark = 300
    server = gunicorn_server("redis", workers=2, OG_BACKLOG_HIGH_WATER=mark)
    worker = ingest(OG_INGEST_CLAIM_IDLE_MS=1000).start(redis)
    client = Http(server.url)
    try:
        mariadb_server.stop()  # the backlog can only grow
        try:
            accepted, shed = set(), 0
            while shed < 20:
                assert len(accepted) <= mark, "writes accepted over the high-water mark"
                conversation = new_uuid()
                status, answer = client.post("/initial", {"uuid": conversation, "symbol": "o"})
                if status == 200:
                    accepted.add((conversation, "initial"))
                else:
                    assert status == 503 and "backlog" in answer["error"], (status, answer)
                    shed += 1
            assert len(accepted) == mark
            assert redis.xlen(STREAM) == mark
            assert get_json(server.url, "/dashboard/symbol/o")[1]["count"] == mark
        finally:
            mariadb_server.start()
        # Nobody intervenes: the worker drains and the API takes writes again.
        deadline = time.monotonic() + 60
        while True:
            conversation = new_uuid()
            status, _ = client.post("/initial", {"uuid": conversation, "symbol": "o"})
            if status == 200:
                accepted.add((conversation, "initial"))
                break
            assert time.monotonic() < deadline, "the API did not recover from the backlog"
            time.sleep(0.1)
    finally:
        client.close()
    wait_drained(redis, worker)
    database.dispose()
    assert_stored_exactly(database, accepted)
    assert get_json(server.url, "/dashboard/symbol/o")[1]["count"] == len(accepted)
    assert worker.terminate() == 0
