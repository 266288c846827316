"""The page at `/` in headless Chromium against a live stack (gunicorn, Redis, MariaDB, the
ingest worker): its numbers are the API's, the range picker shows /dashboard/range for
the window typed (and the API's 400 for a bad one), a stopped Redis shows the API's 503.
The page reads all of it from one request per refresh, /dashboard/overview with the
window (`range` in it is /dashboard/range's answer, cached a second per process).
"""
import time
from datetime import datetime, timezone
from string import ascii_lowercase
from urllib.parse import quote, urlencode

from core import keys
from tests.browser.page_driver import as_table, without
from tests.workers import Load, get_json, symbol_dashboards, wait_drained

BURST = 600
"""Conversations in the burst: every symbol gets some, and it drains in well under a second."""


def utc_seconds(epoch):
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def range_answer(url, lower, upper):
    return get_json(url, f"/dashboard/range/{quote(lower)}/{quote(upper)}")


def overview_with(url, lower, upper):
    """What the page asks: the overview with the window."""
    return get_json(url, "/dashboard/overview?" + urlencode({"lower": lower, "upper": upper},
                                                            quote_via=quote))


def burst(url, conversations=BURST):
    with Load(url, threads=4, conversations=conversations, seconds=60) as load:
        load.join()
    assert set(load.statuses) == {200}, load.statuses
    return load


def expected_accuracy(redis):
    """{symbol: rate} from the model's counts in Redis (docs/API.md section 4)."""
    stats = redis.hgetall(keys.stats(0))
    rates = {}
    for symbol in ascii_lowercase:
        n1, n0 = int(stats.get(f"{symbol}:n1", 0)), int(stats.get(f"{symbol}:n0", 0))
        right = n1 if symbol in "aeiou" else n0
        rates[symbol] = round(right / (n0 + n1), 4) if n0 + n1 else None
    return rates


def test_page_shows_the_apis_numbers_after_a_burst(gunicorn_server, redis, database, ingest,
                                                   page, tmp_path):
    server = gunicorn_server("redis", workers=2)
    worker = ingest().start(redis)
    view = page(server.url)
    began = time.time()
    burst(server.url)
    wait_drained(redis, worker)

    boards = symbol_dashboards(lambda path: get_json(server.url, path))
    assert sum(board["count"] for board in boards.values()) == BURST
    expected = as_table(boards.values())
    view.wait(lambda: without(view.table("symbols-table"), "rate", "accuracy") == expected,
              "the symbol table equal to /dashboard/symbol for a-z")
    shown = view.table("symbols-table")
    for symbol, board in boards.items():
        if board["count"]:
            assert float(shown[symbol]["rate"]) == board["followups"] / board["count"], symbol

    # Accuracy: the model's own counts, read at most a second late by the API.
    accuracy = expected_accuracy(redis)
    view.wait(lambda: {s: float(row["accuracy"]) if row["accuracy"] else None
                       for s, row in view.table("symbols-table").items()} == accuracy,
              "the accuracy column equal to Redis' guess counts")

    # The default window is today (UTC): the range table is /dashboard/range for it.
    today = utc_seconds(time.time())[:10]
    view.wait(lambda: without(view.table("range-table"), "rate")
              == as_table(range_answer(server.url, today, today)[1]),
              "the range table equal to /dashboard/range for today")
    if utc_seconds(time.time())[:10] == today == utc_seconds(began)[:10]:
        assert sum(int(row["count"]) for row in view.table("range-table").values()) == BURST

    # Everything drained: the pipeline says so.
    view.wait(lambda: view.pipeline().get("Backlog (lag + pending)") == "0",
              "the pipeline's backlog at 0")
    figures = view.pipeline()
    assert figures["Dead letters"] == "0" and figures["Range data behind by"] == "0", figures
    assert "up to date" in view.text("pipeline-note")
    assert view.state() == "fresh" and not view.visible("banner")

    shot = view.screenshot(tmp_path / "page.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert worker.terminate() == 0


def test_range_picker_shows_the_window_and_the_apis_400(gunicorn_server, redis, database,
                                                        ingest, page):
    server = gunicorn_server("redis", workers=2)
    worker = ingest().start(redis)
    started = time.time()
    burst(server.url, conversations=200)
    ended = time.time()
    wait_drained(redis, worker)
    view = page(server.url)

    # A window around the burst: every conversation, as the API counts them.
    lower, upper = utc_seconds(started - 1), utc_seconds(ended + 1)
    status, rows = range_answer(server.url, lower, upper)
    assert status == 200 and sum(row["count"] for row in rows) == 200
    status, body = overview_with(server.url, lower, upper)
    assert status == 200 and body["range"]["dashboard"] == rows, body.get("range")
    view.pick_range(lower, upper)
    view.wait(lambda: without(view.table("range-table"), "rate") == as_table(rows),
              f"the range table for {lower} .. {upper}")
    assert "200 conversations" in view.text("range-caption")

    # A window with nothing in it: an empty table, as the API's empty list.
    assert range_answer(server.url, "2001-01-01 00:00:00", "2001-01-01 00:00:10") == (200, [])
    view.pick_range("2001-01-01 00:00:00", "2001-01-01 00:00:10")
    view.wait(lambda: "No conversations" in view.text("range-table"), "the empty range")
    assert view.table("range-table") == {}

    # Bad input: the page shows the API's own 400 message.
    for bad_lower, bad_upper in (("2024-05-02 00:00:00", "2024-05-01 00:00:00"),
                                 ("2024-13-45", "2024-12-01"), ("yesterday", "today")):
        status, answer = range_answer(server.url, bad_lower, bad_upper)
        assert status == 400, (bad_lower, bad_upper, status, answer)
        # The page's own request gets the same 400, text and all.
        assert overview_with(server.url, bad_lower, bad_upper) == (status, answer)
        view.pick_range(bad_lower, bad_upper)
        view.wait(lambda: view.visible("range-error") and answer["error"] in view.text("range-error"),
                  f"the API's 400 message {answer['error']!r}")
        assert "400" in view.text("range-error")
        assert view.table("range-table") == {}

    # And a good window again clears the message.
    view.pick_range(lower, upper)
    view.wait(lambda: not view.visible("range-error")
              and without(view.table("range-table"), "rate") == as_table(rows), "recovery")
    assert worker.terminate() == 0


def test_redis_stopped_shows_the_apis_503_and_keeps_the_numbers(gunicorn_server, redis, database,
                                                                redis_server, page):
    server = gunicorn_server("redis", workers=1)
    burst(server.url, conversations=50)
    view = page(server.url)
    view.wait(lambda: view.table("symbols-table").get("a") is not None, "the symbol table")
    # The accuracy column may still change: the model's counts are read a second late.
    numbers = lambda: without(view.table("symbols-table"), "accuracy")  # noqa: E731
    before = numbers()
    assert sum(int(row["count"]) for row in before.values()) == 50

    redis_server.stop()
    try:
        def shows_the_apis_503():
            status, answer = get_json(server.url, "/dashboard/symbol/a")
            assert status == 503, (status, answer)
            text = view.text("banner") if view.visible("banner") else ""
            return answer["error"] in text and "503" in text

        view.wait(shows_the_apis_503, "the banner with the API's 503 message")
        # Never a blank page: the last numbers stay, marked as old.
        assert numbers() == before
        view.wait(lambda: view.state() == "stale", "the status line saying stale", timeout=30)
        assert "Stale" in view.text("status")
    finally:
        redis_server.start()
    view.wait(lambda: view.state() == "fresh" and not view.visible("banner"),
              "the page recovering once Redis is back", timeout=30)
    assert numbers() == before
