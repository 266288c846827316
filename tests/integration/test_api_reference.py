"""Every row of docs/API.md section 2 on the reference backends.

`api` runs on null and sqlite; on null (which stores nothing) only shapes and statuses
of rejected input are checked. `sqlite_api` checks what was stored.
"""
import contextlib
import json
import sqlite3
import uuid
from datetime import timedelta

import pytest

import server.sqlite_interface
from tests.dashboards import TS_FORMAT, bound, parse_ts, range_dashboard, symbol_dashboard

SUMMARY_KEYS = ["count", "symbol", "earliest", "latest", "followups"]
EVERYTHING = ("1970-01-01", "9999-12-31")


@pytest.fixture(params=["null", "sqlite"])
def api(request, make_app):
    return make_app(request.param, OG_SEED=1)


@pytest.fixture
def sqlite_api(make_app):
    return make_app("sqlite", OG_SEED=1)


def new_uuid():
    return str(uuid.uuid4())


def post(api, path, body):
    return api.post(path, body)


def get(api, path):
    return api.get(path)


def assert_error(status, body, expected_status):
    assert status == expected_status, body
    assert list(body) == ["error"] and isinstance(body["error"], str) and body["error"]


def stored(api):
    """(conversations, followups) in the sqlite file, or None on null."""
    if api.sqlite_path is None:
        return None
    with contextlib.closing(sqlite3.connect(api.sqlite_path)) as db:
        return db.execute("SELECT COUNT(*), COUNT(followup_ts) FROM conversations").fetchone()


def stored_ts(api, conversation):
    with contextlib.closing(sqlite3.connect(api.sqlite_path)) as db:
        return db.execute("SELECT ts FROM conversations WHERE uuid = ?", (conversation,)).fetchone()[0]


def totals(api):
    """(count, followups) over every symbol, as the dashboards report them."""
    status, rows = get(api, "/dashboard/range/%s/%s" % EVERYTHING)
    assert status == 200
    return sum(r["count"] for r in rows), sum(r["followups"] for r in rows)


@contextlib.contextmanager
def nothing_stored(api):
    before = stored(api), totals(api)
    yield
    assert (stored(api), totals(api)) == before


def start(api, symbol="a", conversation=None):
    conversation = conversation or new_uuid()
    status, body = post(api, "/initial", {"uuid": conversation, "symbol": symbol})
    assert status == 200, body
    return conversation, body["vowel"]


# --- POST /initial -------------------------------------------------------------------


@pytest.mark.parametrize("symbol", ["a", "e", "z", "m"])
def test_initial_answers_the_guess(api, symbol):
    conversation = new_uuid()
    response = api.client.post("/initial", json={"uuid": conversation, "symbol": symbol})
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert list(body) == ["uuid", "symbol", "vowel"]
    assert body["uuid"] == conversation and body["symbol"] == symbol
    assert isinstance(body["vowel"], bool)


def test_initial_echoes_the_uuid_in_lowercase(api):
    conversation = new_uuid()
    status, body = post(api, "/initial", {"uuid": conversation.upper(), "symbol": "b"})
    assert status == 200 and body["uuid"] == conversation


def test_initial_ignores_extra_fields(api):
    conversation = new_uuid()
    status, body = post(api, "/initial", {"uuid": conversation, "symbol": "c", "vowel": True,
                                          "extra": {"nested": [1, 2]}})
    assert status == 200 and body["uuid"] == conversation and body["symbol"] == "c"


BAD_INITIAL_BODIES = [
    pytest.param(b"", id="empty"),
    pytest.param(b"{", id="not-json"),
    pytest.param(b"\xff\xfe", id="not-utf8"),
    pytest.param(b"[]", id="list"),
    pytest.param(b'"a"', id="string"),
    pytest.param(b"null", id="null"),
    pytest.param(b"42", id="number"),
    pytest.param({"symbol": "a"}, id="missing-uuid"),
    pytest.param({"uuid": "VALID"}, id="missing-symbol"),
    pytest.param({"uuid": None, "symbol": "a"}, id="uuid-null"),
    pytest.param({"uuid": 12345, "symbol": "a"}, id="uuid-number"),
    pytest.param({"uuid": "not-a-uuid", "symbol": "a"}, id="uuid-invalid"),
    pytest.param({"uuid": "{VALID}", "symbol": "a"}, id="uuid-braces"),
    pytest.param({"uuid": "VALID", "symbol": None}, id="symbol-null"),
    pytest.param({"uuid": "VALID", "symbol": 97}, id="symbol-number"),
    pytest.param({"uuid": "VALID", "symbol": ["a"]}, id="symbol-list"),
    pytest.param({"uuid": "VALID", "symbol": "E"}, id="symbol-E"),
    pytest.param({"uuid": "VALID", "symbol": "ab"}, id="symbol-ab"),
    pytest.param({"uuid": "VALID", "symbol": "é"}, id="symbol-e-acute"),
    pytest.param({"uuid": "VALID", "symbol": ""}, id="symbol-empty"),
    pytest.param({"uuid": "VALID", "symbol": "1"}, id="symbol-digit"),
    pytest.param({"uuid": "VALID", "symbol": " "}, id="symbol-space"),
]


def _fill(body, conversation):
    if isinstance(body, bytes):
        return body
    return json.loads(json.dumps(body).replace("VALID", conversation))


@pytest.mark.parametrize("body", BAD_INITIAL_BODIES)
def test_bad_initial_is_400_and_stores_nothing(api, body):
    conversation = new_uuid()
    with nothing_stored(api):
        assert_error(*post(api, "/initial", _fill(body, conversation)), 400)
    # The uuid was not taken: it can still start a conversation.
    start(api, "a", conversation)


def test_repeated_uuid_is_409_and_counted_once(sqlite_api):
    conversation, _ = start(sqlite_api, "k")
    first = get(sqlite_api, "/dashboard/symbol/k")[1]
    with nothing_stored(sqlite_api):
        assert_error(*post(sqlite_api, "/initial", {"uuid": conversation, "symbol": "k"}), 409)
        assert_error(*post(sqlite_api, "/initial", {"uuid": conversation, "symbol": "j"}), 409)
        assert_error(*post(sqlite_api, "/initial",
                           {"uuid": conversation.upper(), "symbol": "k"}), 409)
    assert first["count"] == 1
    assert get(sqlite_api, "/dashboard/symbol/k")[1] == first
    assert get(sqlite_api, "/dashboard/symbol/j")[1]["count"] == 0


# --- POST /followup ------------------------------------------------------------------


def test_followup_answers(api):
    conversation, _ = start(api, "d")
    response = api.client.post("/followup", json={"uuid": conversation.upper(), "extra": 1})
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.get_json() == {"uuid": conversation, "followup": True}


BAD_FOLLOWUP_BODIES = [
    pytest.param(b"", id="empty"),
    pytest.param(b"{", id="not-json"),
    pytest.param(b"[]", id="list"),
    pytest.param({}, id="missing-uuid"),
    pytest.param({"symbol": "a"}, id="only-symbol"),
    pytest.param({"uuid": None}, id="uuid-null"),
    pytest.param({"uuid": 1}, id="uuid-number"),
    pytest.param({"uuid": "VALID-but-not"}, id="uuid-invalid"),
    pytest.param({"uuid": "urn:uuid:VALID"}, id="uuid-urn"),
]


@pytest.mark.parametrize("body", BAD_FOLLOWUP_BODIES)
def test_bad_followup_is_400_and_stores_nothing(api, body):
    conversation, _ = start(api, "f")
    with nothing_stored(api):
        assert_error(*post(api, "/followup", _fill(body, conversation)), 400)
    # The conversation did not follow up: it still can.
    assert post(api, "/followup", {"uuid": conversation})[0] == 200


def test_followup_of_an_unknown_conversation_is_404(sqlite_api):
    conversation = new_uuid()
    with nothing_stored(sqlite_api):
        assert_error(*post(sqlite_api, "/followup", {"uuid": conversation}), 404)
    # Nothing was remembered about the uuid either.
    start(sqlite_api, "g", conversation)
    assert post(sqlite_api, "/followup", {"uuid": conversation})[0] == 200


def test_second_followup_is_409_and_counted_once(sqlite_api):
    conversation, _ = start(sqlite_api, "h")
    assert post(sqlite_api, "/followup", {"uuid": conversation})[0] == 200
    with nothing_stored(sqlite_api):
        assert_error(*post(sqlite_api, "/followup", {"uuid": conversation}), 409)
        assert_error(*post(sqlite_api, "/followup", {"uuid": conversation.upper()}), 409)
    assert get(sqlite_api, "/dashboard/symbol/h")[1]["followups"] == 1
    assert stored(sqlite_api) == (1, 1)


# --- 413 -----------------------------------------------------------------------------


def padded(body, size):
    """`body` as JSON of exactly `size` bytes, padded in an ignored field."""
    raw = json.dumps({**body, "pad": ""}).encode()
    return json.dumps({**body, "pad": "x" * (size - len(raw))}).encode()


def test_body_of_exactly_1_kib_is_accepted(api):
    conversation = new_uuid()
    body = padded({"uuid": conversation, "symbol": "i"}, 1024)
    assert len(body) == 1024
    assert post(api, "/initial", body)[0] == 200
    body = padded({"uuid": conversation}, 1024)
    assert post(api, "/followup", body)[0] == 200


@pytest.mark.parametrize("size", [1025, 4096, 1 << 20])
def test_body_over_1_kib_is_413_and_stores_nothing(api, size):
    conversation = new_uuid()
    body = padded({"uuid": conversation, "symbol": "j"}, size)
    assert len(body) == size
    with nothing_stored(api):
        assert_error(*post(api, "/initial", body), 413)
    start(api, "j", conversation)
    with nothing_stored(api):
        assert_error(*post(api, "/followup", padded({"uuid": conversation}, size)), 413)
    assert post(api, "/followup", {"uuid": conversation})[0] == 200


# --- 503 -----------------------------------------------------------------------------


def test_locked_store_is_503_and_stores_nothing(sqlite_api, monkeypatch):
    known, _ = start(sqlite_api, "l")
    monkeypatch.setattr(server.sqlite_interface, "BUSY_TIMEOUT_S", 0.05)
    fresh = new_uuid()
    with contextlib.closing(sqlite3.connect(sqlite_api.sqlite_path, isolation_level=None)) as lock:
        lock.execute("BEGIN EXCLUSIVE")
        try:
            assert_error(*post(sqlite_api, "/initial", {"uuid": fresh, "symbol": "l"}), 503)
            assert_error(*post(sqlite_api, "/followup", {"uuid": known}), 503)
        finally:
            lock.execute("ROLLBACK")
    assert stored(sqlite_api) == (1, 0)
    start(sqlite_api, "l", fresh)
    assert post(sqlite_api, "/followup", {"uuid": known})[0] == 200


# --- GET /dashboard/symbol -----------------------------------------------------------


@pytest.mark.parametrize("symbol", ["a", "q", "z"])
def test_symbol_without_data(api, symbol):
    response = api.client.get(f"/dashboard/symbol/{symbol}")
    assert response.status_code == 200 and response.mimetype == "application/json"
    body = response.get_json()
    assert list(body) == SUMMARY_KEYS
    assert body == {"count": 0, "symbol": symbol, "earliest": None, "latest": None,
                    "followups": 0}


@pytest.mark.parametrize("symbol", ["E", "ab", "%C3%A9", "1", "%20", "a%20", "_"])
def test_bad_symbol_dashboard_is_400(api, symbol):
    assert_error(*get(api, f"/dashboard/symbol/{symbol}"), 400)


def test_symbol_dashboard_is_exact_after_each_write(sqlite_api):
    conversations = {}
    for followed in (False, True, True):
        conversation, _ = start(sqlite_api, "m")
        conversations[conversation] = ["m", stored_ts(sqlite_api, conversation), False]
        assert get(sqlite_api, "/dashboard/symbol/m")[1] == symbol_dashboard(
            conversations.values(), "m")
        if followed:
            assert post(sqlite_api, "/followup", {"uuid": conversation})[0] == 200
            conversations[conversation][2] = True
            assert get(sqlite_api, "/dashboard/symbol/m")[1] == symbol_dashboard(
                conversations.values(), "m")
    body = get(sqlite_api, "/dashboard/symbol/m")[1]
    assert (body["count"], body["followups"]) == (3, 2)
    assert list(body) == SUMMARY_KEYS
    assert parse_ts(body["earliest"]) < parse_ts(body["latest"])
    assert get(sqlite_api, "/dashboard/symbol/n")[1]["count"] == 0


# --- GET /dashboard/range ------------------------------------------------------------


def test_range_without_data_is_an_empty_list(api):
    for lower, upper in [EVERYTHING, ("2024-03-05", "2024-03-05"),
                         ("2024-03-05 00:00:00", "2024-03-05T23:59:59.999999")]:
        assert get(api, f"/dashboard/range/{lower}/{upper}") == (200, [])


@pytest.mark.parametrize("lower, upper", [
    ("2024-03-06", "2024-03-05"),
    ("2024-03-05 10:00:00.000001", "2024-03-05 10:00:00"),
    ("2024-03-05T10:00:01", "2024-03-05%2010:00:00.999999"),
    ("2024-03-06 00:00:00", "2024-03-05"),
])
def test_lower_after_upper_is_400(api, lower, upper):
    assert_error(*get(api, f"/dashboard/range/{lower}/{upper}"), 400)


@pytest.mark.parametrize("text", [
    "2024-02-30", "2023-02-29", "2024-13-01", "2024-3-5", "20240305", "yesterday",
    "2024-03-05%2010:00", "2024-03-05%2025:00:00", "2024-03-05T10:00:00Z",
    "2024-03-05T10:00:00.1234567", "2024-03-05%20%2010:00:00", "%20",
])
@pytest.mark.parametrize("side", ["lower", "upper"])
def test_bad_bound_is_400(api, text, side):
    lower, upper = (text, "2024-03-06") if side == "lower" else ("2024-03-04", text)
    assert_error(*get(api, f"/dashboard/range/{lower}/{upper}"), 400)


def _micros(moment):
    return moment.strftime(TS_FORMAT)


def _encodings(moment_text):
    """The three separators docs/API.md section 2 allows between date and time."""
    return [moment_text.replace(" ", "%20"), moment_text.replace(" ", "T"), moment_text]


def test_range_bounds_are_inclusive_in_every_form(sqlite_api):
    conversations = []
    for symbol, followed in [("a", True), ("b", False), ("a", False), ("c", True)]:
        conversation, _ = start(sqlite_api, symbol)
        if followed:
            assert post(sqlite_api, "/followup", {"uuid": conversation})[0] == 200
        conversations.append((symbol, stored_ts(sqlite_api, conversation), followed))
    stamps = [parse_ts(ts) for _, ts, _ in conversations]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    tick = timedelta(microseconds=1)

    windows = [
        (stamps[0], stamps[0]),          # exactly one conversation, both edges on it
        (stamps[1], stamps[2]),          # lower edge and upper edge on two conversations
        (stamps[0] + tick, stamps[3] - tick),  # just inside the outer two: they drop out
        (stamps[0] - tick, stamps[3] + tick),
        (stamps[3], stamps[3]),
        (stamps[3] + tick, stamps[3] + tick),  # nothing
    ]
    for lower, upper in windows:
        expected = range_dashboard(conversations, lower, upper)
        for lower_text in _encodings(_micros(lower)):
            for upper_text in _encodings(_micros(upper)):
                assert get(sqlite_api, f"/dashboard/range/{lower_text}/{upper_text}") == (
                    200, expected), (lower_text, upper_text)
    # Non-vacuous: the exact-edge windows found their conversations.
    assert range_dashboard(conversations, stamps[0], stamps[0])[0]["count"] == 1
    assert sum(r["count"] for r in range_dashboard(conversations, stamps[1], stamps[2])) == 2


def test_range_date_only_and_whole_second_bounds(sqlite_api):
    conversations = []
    for symbol in "xyx":
        conversation, _ = start(sqlite_api, symbol)
        conversations.append((symbol, stored_ts(sqlite_api, conversation), False))
    first, last = parse_ts(conversations[0][1]), parse_ts(conversations[-1][1])
    day, next_day = first.strftime("%Y-%m-%d"), (last + timedelta(days=1)).strftime("%Y-%m-%d")
    second = first.strftime("%Y-%m-%d %H:%M:%S")
    queries = [
        (day, last.strftime("%Y-%m-%d")),  # a date-only upper is the end of its day
        (day, next_day),
        (next_day, next_day),              # a date-only lower is the start of its day
        ((first - timedelta(days=1)).strftime("%Y-%m-%d"), day),
        (second, last.strftime("%Y-%m-%d")),  # whole seconds, no fraction
        (day, second),                     # an upper of whole seconds is that instant
        (second.replace(" ", "T"), next_day),
    ]
    for lower, upper in queries:
        expected = range_dashboard(conversations, bound(lower, False), bound(upper, True))
        path = f"/dashboard/range/{lower}/{upper}".replace(" ", "%20")
        assert get(sqlite_api, path) == (200, expected), path
    assert sum(r["count"] for r in range_dashboard(
        conversations, bound(day, False), bound(last.strftime("%Y-%m-%d"), True))) == 3


def test_range_counts_followups_of_its_conversations_whenever_they_came(sqlite_api):
    early, _ = start(sqlite_api, "p")
    early_ts = stored_ts(sqlite_api, early)
    late, _ = start(sqlite_api, "p")
    assert post(sqlite_api, "/followup", {"uuid": early})[0] == 200
    # The followup came after `late` started, yet counts for the window of `early` alone.
    window = f"/dashboard/range/{early_ts}/{early_ts}".replace(" ", "%20")
    assert get(sqlite_api, window) == (200, [
        {"count": 1, "symbol": "p", "earliest": early_ts, "latest": early_ts, "followups": 1}])
    assert stored_ts(sqlite_api, late) > early_ts


def test_range_before_year_1000_holds_nothing(api):
    start(api, "r")
    assert get(api, "/dashboard/range/0001-01-01/0999-12-31") == (200, [])


# --- routes --------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/nope", "/dashboard", "/dashboard/symbol/",
                                  "/dashboard/symbol/a/b", "/dashboard/range/2024-03-05",
                                  "/dashboard/range/2024-03-05/2024-03-06/x", "/initial/x"])
def test_unknown_route_is_json_404(api, path):
    assert_error(*get(api, path), 404)
    assert_error(*post(api, path, {"uuid": new_uuid(), "symbol": "a"}), 404)


@pytest.mark.parametrize("method, path", [("GET", "/initial"), ("GET", "/followup"),
                                          ("POST", "/dashboard/symbol/a"),
                                          ("DELETE", "/initial")])
def test_wrong_method_is_json_405(api, method, path):
    response = api.client.open(path, method=method)
    assert_error(response.status_code, response.get_json(silent=True), 405)
