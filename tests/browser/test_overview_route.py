"""GET /dashboard/overview and the page's files over HTTP, without a browser: the
dashboards are the API's, the pipeline figures are core.pipeline's, answers are cached a
second per process, a store that is down gives a fast 503 that still carries what the
other stores said, and the null and sqlite backends say the pipeline does not apply.
With a window (`?lower=..&upper=..`, what the page asks), `range` is /dashboard/range's
answer for it, at most a second old, and a bad window is /dashboard/range's 400.
"""
import os
import signal
import time
from urllib.parse import quote, urlencode

import pytest

from core import pipeline
from core.store.gateway import Store
from tests.browser.page_driver import check_page_files
from tests.workers import (Http, Load, append_events, get_json, symbol_dashboards,
                           wait_drained)

FAST_S = 3.0
"""A 503 with a store down (OG_REDIS_TIMEOUT=0.5) comes well within this; it never hangs."""


@pytest.mark.parametrize("backend", ["null", "sqlite"])
def test_without_a_pipeline_the_overview_says_so(gunicorn_server, backend):
    server = gunicorn_server(backend, workers=1)
    with Load(server.url, threads=2, conversations=60) as load:
        load.join()
    status, body = get_json(server.url, "/dashboard/overview")
    assert status == 200, body
    assert body["backend"] == backend and "error" not in body
    boards = symbol_dashboards(lambda path: get_json(server.url, path))
    time.sleep(1.1)  # past the overview's cache: the same numbers, answered anew
    status, body = get_json(server.url, "/dashboard/overview")
    assert body["symbols"] == [boards[symbol] for symbol in sorted(boards)]
    assert sum(board["count"] for board in body["symbols"]) == (60 if backend == "sqlite" else 0)
    assert body["pipeline"]["applies"] is False
    assert f"the {backend} backend has no ingest pipeline" in body["pipeline"]["reason"]
    assert body["accuracy"]["available"] is False
    assert "not available" in body["accuracy"]["reason"]
    check_page_files(server.url)


def test_overview_reports_the_backlog_and_its_age_then_the_drain(gunicorn_server, redis,
                                                                 redis_server, database, ingest):
    server = gunicorn_server("redis", workers=1)
    client = Http(server.url)
    try:
        with Load(server.url, threads=2, conversations=100, followup_rate=0.0) as load:
            load.join()
        time.sleep(0.3)
        status, body = client.get("/dashboard/overview")
        assert status == 200, body
        health = body["pipeline"]
        assert health["applies"] is True
        report = pipeline.collect(Store.connect(redis_server.url, 1, timeout=2))
        assert health["streams"][0]["length"] == report[0]["length"] == 100
        assert health["backlog"] == 100 and health["pending"] == 0 and health["dead_letters"] == 0
        # No worker has run: the range dashboard lags by the age of the first event.
        assert 0.3 <= health["range_behind_s"] < 60, health
        assert health["newest_stored"] is None

        # One answer a second per process: asked again at once, the same answer.
        again = client.get("/dashboard/overview")[1]
        assert again["generated_at"] == body["generated_at"]
        append_events(redis, 5)
        time.sleep(1.1)
        later = client.get("/dashboard/overview")[1]
        assert later["generated_at"] != body["generated_at"]
        assert later["pipeline"]["streams"][0]["length"] == 105

        worker = ingest().start(redis)
        wait_drained(redis, worker)
        time.sleep(1.1)
        status, body = client.get("/dashboard/overview")
        assert status == 200, body
        health = body["pipeline"]
        assert (health["backlog"], health["lag"], health["pending"]) == (0, 0, 0), health
        assert health["range_behind_s"] == 0 and health["consumers"] >= 1
        assert health["newest_stored"] is not None and health["newest_stored_age_s"] >= 0
        assert sum(row["count"] for row in body["symbols"]) == 105 - 5  # the API's 100
        assert body["accuracy"]["available"] is True and body["accuracy"]["guesses"] == 100
        assert worker.terminate() == 0
    finally:
        client.close()


def overview_of(client, lower, upper):
    return client.get("/dashboard/overview?" + urlencode({"lower": lower, "upper": upper},
                                                         quote_via=quote))


def range_of(client, lower, upper):
    return client.get(f"/dashboard/range/{quote(lower)}/{quote(upper)}")


def test_the_window_is_the_range_dashboard_at_most_a_second_old(gunicorn_server, redis,
                                                                database, ingest):
    server = gunicorn_server("redis", workers=1)
    worker = ingest().start(redis)
    client = Http(server.url)
    try:
        with Load(server.url, threads=2, conversations=80) as load:
            load.join()
        wait_drained(redis, worker)
        today = time.strftime("%Y-%m-%d", time.gmtime())
        status, body = overview_of(client, today, today)
        assert status == 200, body
        part = body["range"]
        assert part["status"] == 200 and part["cache_s"] == 1.0
        assert (part["lower"], part["upper"]) == (f"{today} 00:00:00.000000",
                                                  f"{today} 23:59:59.999999")
        assert part["dashboard"] == range_of(client, today, today)[1]
        assert sum(row["count"] for row in part["dashboard"]) == 80
        # The rest of the answer is the overview's own.
        assert sum(row["count"] for row in body["symbols"]) == 80 and "error" not in body

        # Asked again within the second: the same figures, not asked of MariaDB again.
        with Load(server.url, threads=2, conversations=20) as load:
            load.join()
        wait_drained(redis, worker)
        again = overview_of(client, today, today)[1]["range"]
        fresh = range_of(client, today, today)[1]
        # /dashboard/range itself is never cached: it has the 20 new ones at once.
        assert sum(row["count"] for row in fresh) == 100
        if again["generated_at"] == part["generated_at"]:
            assert again == part
        # Past the second: computed anew, equal to /dashboard/range again.
        time.sleep(1.1)
        later = overview_of(client, today, today)[1]["range"]
        assert later["generated_at"] != part["generated_at"]
        assert later["dashboard"] == fresh

        # A bad window is /dashboard/range's 400, text and all; nothing else is computed.
        for lower, upper in (("2024-05-02 00:00:00", "2024-05-01 00:00:00"),
                             ("2024-13-45", "2024-12-01"), ("yesterday", "today"),
                             ("2024-05-01 00:00", "2024-05-01")):
            expected = range_of(client, lower, upper)
            assert expected[0] == 400, expected
            assert overview_of(client, lower, upper) == expected, (lower, upper)
        status, body = client.get("/dashboard/overview?lower=2024-05-01")
        assert status == 400 and "give both lower and upper" in body["error"], body
        assert worker.terminate() == 0
    finally:
        client.close()


def test_mariadb_down_is_a_503_that_keeps_the_redis_figures(gunicorn_server, redis, database,
                                                           mariadb_server):
    server = gunicorn_server("redis", workers=1, OG_DATABASE_TIMEOUT=1)
    with Load(server.url, threads=2, conversations=30) as load:
        load.join()
    assert get_json(server.url, "/dashboard/overview")[0] == 200
    window = "lower=2024-05-01&upper=2024-05-01"
    assert get_json(server.url, f"/dashboard/overview?{window}")[0] == 200
    mariadb_server.stop()
    try:
        time.sleep(1.1)
        started = time.monotonic()
        status, body = get_json(server.url, "/dashboard/overview")
        elapsed = time.monotonic() - started
        # With a window: the range's own 503, never the figures of a second ago.
        windowed_status, windowed = get_json(server.url, f"/dashboard/overview?{window}")
        range_status, range_answer = get_json(server.url, "/dashboard/range/2024-05-01/2024-05-01")
    finally:
        mariadb_server.start()
    assert status == 503, body
    assert body["error"].startswith("event store unavailable"), body["error"]
    assert list(body["errors"]) == ["store"]
    assert sum(row["count"] for row in body["symbols"]) == 30
    assert body["pipeline"]["backlog"] == body["pipeline"]["streams"][0]["length"] > 0
    assert elapsed < FAST_S + 2, elapsed  # MariaDB's connect timeout is a whole second
    assert windowed_status == range_status == 503, (windowed, range_answer)
    part = windowed["range"]
    assert part["status"] == 503 and part["dashboard"] is None
    assert part["error"].startswith("event store unavailable"), part
    assert range_answer["error"].startswith("event store unavailable"), range_answer
    assert set(windowed["errors"]) == {"store", "range"}
    assert sum(row["count"] for row in windowed["symbols"]) == 30


def test_frozen_redis_is_a_fast_503_with_the_apis_text(gunicorn_server, redis, database,
                                                       redis_server):
    server = gunicorn_server("redis", workers=1, OG_REDIS_TIMEOUT=0.5)
    assert get_json(server.url, "/dashboard/overview")[0] == 200
    os.kill(redis_server.pid, signal.SIGSTOP)  # up, but answers nothing
    try:
        time.sleep(1.1)
        started = time.monotonic()
        status, body = get_json(server.url, "/dashboard/overview")
        elapsed = time.monotonic() - started
        symbol_status, symbol_answer = get_json(server.url, "/dashboard/symbol/a")
    finally:
        os.kill(redis_server.pid, signal.SIGCONT)
    assert status == 503 and symbol_status == 503, (body, symbol_answer)
    assert elapsed < FAST_S, elapsed
    assert set(body["errors"]) == {"symbols", "pipeline"}, body["errors"]
    assert body["errors"]["symbols"].startswith("redis unavailable")
    assert symbol_answer["error"].startswith("redis unavailable")
    assert body["symbols"] is None and "store" not in body.get("errors", {})
    # Back by itself once Redis answers.
    deadline = time.monotonic() + 10
    while get_json(server.url, "/dashboard/overview")[0] != 200:
        assert time.monotonic() < deadline, "the overview did not recover"
        time.sleep(0.2)


def test_the_page_paths_only_read(gunicorn_server):
    server = gunicorn_server("null", workers=1)
    client = Http(server.url)
    try:
        for path in ("/", "/dashboard/overview", "/dashboard/overview?lower=2024-05-01&upper=2024-05-01",
                     "/page/page.js"):
            status, body = client.post(path, {"uuid": "x"})
            assert status == 405 and "not allowed" in body["error"], (path, status, body)
            status, body = client.request("OPTIONS", path)
            assert (status, body) == (200, {"allow": ["GET", "HEAD", "OPTIONS"]}), path
    finally:
        client.close()
