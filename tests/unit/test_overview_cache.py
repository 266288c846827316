"""The overview's window (server/overview.py), without an app: the range dashboard of
`?lower=..&upper=..` is the backend's, at most CACHE_S old, asked once per window and
second however many callers, a failure is never hidden behind older figures, the
windows kept are bounded, and the window is read by the app's own parser."""
import json
import threading
import time
from datetime import datetime
from types import SimpleNamespace

import pytest

from server import overview as overview_module
from server.data_interface import Unavailable
from server.overview import CACHE_S, Overview, window_of
from server.validation import BadRequest, parse_range

SETTINGS = SimpleNamespace(backend="null", redis_timeout=1.0, database_timeout=2.0)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class Backend:
    """A data interface that counts its range queries and can be made to fail."""

    def __init__(self):
        self.queries = []
        self.failure = None
        self.count = 1
        self.gate = None

    def dashboard_symbol(self, symbol):
        return {"count": 0, "symbol": symbol, "earliest": None, "latest": None, "followups": 0}

    def dashboard_range(self, lower, upper):
        self.queries.append((lower, upper))
        if self.gate is not None:
            self.gate.wait(5)
        if self.failure is not None:
            raise self.failure
        return [{"count": self.count, "symbol": "a", "earliest": None, "latest": None,
                 "followups": 0}]


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def backend():
    return Backend()


def ask(view, query):
    status, body = view.answer(query)
    return status, json.loads(body)


def test_the_window_is_the_backends_range_dashboard_with_its_age(clock, backend):
    view = Overview(backend, SETTINGS, clock=clock)
    status, body = ask(view, "lower=2024-05-01&upper=2024-05-01")
    assert status == 200, body
    part = body["range"]
    assert part["status"] == 200 and part["cache_s"] == CACHE_S == body["cache_s"]
    assert part["dashboard"] == backend.dashboard_range(*parse_range("2024-05-01", "2024-05-01"))
    assert (part["lower"], part["upper"]) == ("2024-05-01 00:00:00.000000",
                                              "2024-05-01 23:59:59.999999")
    assert part["generated_at"] and body["symbols"] and "error" not in body
    # Without a window, the overview as before: no `range`.
    assert "range" not in ask(view, "")[1]


def test_a_window_is_asked_once_per_second_whoever_asks(clock, backend):
    view = Overview(backend, SETTINGS, clock=clock)
    window = "lower=2024-05-01%2000:00:00&upper=2024-05-02+00:00:00"
    first = view.answer(window)
    clock.now += CACHE_S * 0.9
    backend.count = 2
    # Within the second: the same bytes (the same window however it is spelled).
    assert view.answer(window) == first
    assert view.answer("upper=2024-05-02T00:00:00&lower=2024-05-01 00:00:00.000000") == first
    assert len(backend.queries) == 1
    # Past it: asked anew, the new figures.
    clock.now += CACHE_S * 0.2
    status, body = ask(view, window)
    assert len(backend.queries) == 2 and body["range"]["dashboard"][0]["count"] == 2


def test_concurrent_callers_of_a_window_share_one_query(clock, backend):
    view = Overview(backend, SETTINGS, clock=clock)
    view.answer("")  # the overview part computed already: only the range is left to ask
    backend.gate = threading.Event()
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(view.answer("lower=2024-05-01&upper=2024-05-01")))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    backend.gate.set()
    for thread in threads:
        thread.join(5)
    assert len(answers) == 8 and len(set(answers)) == 1
    assert len(backend.queries) == 1


def test_a_failure_is_never_served_as_the_last_good_figures(clock, backend):
    view = Overview(backend, SETTINGS, clock=clock)
    query = "lower=2024-05-01&upper=2024-05-01"
    assert ask(view, query)[0] == 200
    backend.failure = Unavailable("event store unavailable: gone")
    clock.now += CACHE_S + 0.01
    status, body = ask(view, query)
    assert status == 503, body
    part = body["range"]
    assert (part["status"], part["error"], part["dashboard"]) == (503, "event store unavailable: gone", None)
    assert body["errors"] == {"range": "event store unavailable: gone"}
    assert body["error"] == "event store unavailable: gone"
    assert body["symbols"] is not None  # the parts that answered are there all the same
    # And back once the store answers again.
    backend.failure = None
    clock.now += CACHE_S + 0.01
    assert ask(view, query)[0] == 200


def test_a_bug_is_the_apps_500_text_inside_a_503(clock, backend):
    view = Overview(backend, SETTINGS, clock=clock)
    backend.failure = KeyError("oops")
    status, body = ask(view, "lower=2024-05-01&upper=2024-05-01")
    assert status == 503 and body["range"]["status"] == 500
    assert body["range"]["error"] == "internal error"


def test_the_windows_kept_are_bounded(clock, backend):
    view = Overview(backend, SETTINGS, clock=clock, ranges_kept=3)
    for day in range(1, 8):
        assert ask(view, f"lower=2024-05-{day:02d}&upper=2024-05-{day:02d}")[0] == 200
    assert len(view._ranges) == 3
    assert list(view._ranges) == [parse_range(f"2024-05-0{d}", f"2024-05-0{d}") for d in (5, 6, 7)]
    assert overview_module.RANGES_KEPT == 64


@pytest.mark.parametrize("lower, upper", [
    ("2024-05-02 00:00:00", "2024-05-01 00:00:00"), ("2024-13-45", "2024-12-01"),
    ("yesterday", "today"), ("", "2024-05-01"), ("2024-05-01 00:00", "2024-05-01"),
])
def test_a_bad_window_is_the_apps_400_text(clock, backend, lower, upper):
    view = Overview(backend, SETTINGS, clock=clock)
    from urllib.parse import urlencode

    with pytest.raises(BadRequest) as refused:
        parse_range(lower, upper)
    status, body = ask(view, urlencode({"lower": lower, "upper": upper}))
    assert (status, body) == (400, {"error": str(refused.value)})
    assert backend.queries == []  # nothing asked of a store for a refused window


@pytest.mark.parametrize("query, reason", [
    ("lower=2024-05-01", "give both lower and upper"),
    ("upper=2024-05-01", "give both lower and upper"),
    ("&", "give both lower and upper"),
    ("lower=2024-05-01&upper=2024-05-01&lower=2024-05-02", "'lower' given more than once"),
    ("lower=2024-05-01&upper=2024-05-01&x=1", "unknown parameter 'x'"),
])
def test_a_bad_query_is_a_400(clock, backend, query, reason):
    status, body = ask(Overview(backend, SETTINGS, clock=clock), query)
    assert status == 400 and reason in body["error"], body


def test_window_of_decodes_the_query_as_flask_decodes_a_path():
    assert window_of("lower=2024-05-01%2000:00:00&upper=2024-05-01+01:00:00") == (
        "2024-05-01 00:00:00", "2024-05-01 01:00:00")
    assert window_of("lower=%C3%A9&upper=%ff") == ("é", "\ufffd")
    assert datetime(2024, 5, 1) == parse_range(*window_of("lower=2024-05-01&upper=2024-05-01"))[0]
