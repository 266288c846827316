"""Property-based: whatever arrives, the API never answers 500, every error is a JSON
object with an "error" string, and a request that docs/API.md section 2 rejects stores nothing.

Each request's expected status comes from an oracle written from docs/API.md section 2 (not
from server/validation.py). Valid requests that hypothesis happens to make must then
succeed and store exactly one event. Runs on the redis backend (stream, aggregates and
conversation keys compared) and the sqlite reference (its rows compared).
"""
import contextlib
import json
import re
import sqlite3
from datetime import datetime
from string import ascii_lowercase
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from core import event_store, keys
from tests.workers import STATS, STREAM

EXAMPLES = settings(max_examples=200, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow, HealthCheck.data_too_large])
UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
DATETIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[ T]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,6}))?")


class Store:
    """The app under test and what it has stored, with the oracle's memory of it."""

    def __init__(self, api, redis_client):
        self.api = api
        self.redis = redis_client
        self.started = {}  # uuid -> followed up?

    def snapshot(self):
        if self.redis is not None:
            # The layout record (og:{0}:layout) and the uuid filter's size are written at
            # the first Redis use of any request; metadata, not something a request stored.
            data_keys = [k for k in self.redis.keys("*")
                         if k not in (keys.layout(), keys.seen_bits(0))]
            return (self.redis.xlen(STREAM), self.redis.hgetall(STATS), len(data_keys))
        with contextlib.closing(sqlite3.connect(self.api.sqlite_path)) as db:
            return db.execute("SELECT COUNT(*), COUNT(followup_ts) FROM conversations").fetchone()

    def events(self):
        """How many events are stored in all."""
        if self.redis is not None:
            return self.redis.xlen(STREAM)
        conversations, followups = self.snapshot()
        return conversations + followups


@pytest.fixture(params=["redis", "sqlite"])
def store(request, make_app):
    if request.param == "redis":
        client = request.getfixturevalue("redis")
        # og.events exists, as once the worker has run: range queries reach MariaDB.
        event_store.create_tables(request.getfixturevalue("database"))
        return Store(make_app("redis", OG_SEED=1), client)
    return Store(make_app("sqlite", OG_SEED=1), None)


# --- the oracle: docs/API.md section 2 ----------------------------------------------------------


def expected_post(store, path, raw):
    """The status docs/API.md section 2 gives a POST of `raw` bytes to `path`."""
    if len(raw) > 1024:
        return 413
    try:
        body = json.loads(raw)
    except ValueError:
        return 400
    if not isinstance(body, dict):
        return 400
    uuid = body.get("uuid")
    if not isinstance(uuid, str) or not UUID.fullmatch(uuid):
        return 400
    uuid = uuid.lower()
    if path == "/initial":
        symbol = body.get("symbol")
        if not isinstance(symbol, str) or len(symbol) != 1 or symbol not in ascii_lowercase:
            return 400
        return 409 if uuid in store.started else 200
    if uuid not in store.started:
        return 404
    return 409 if store.started[uuid] else 200


def parse_bound(text, upper):
    """A bound as docs/API.md section 2 defines it, or None."""
    try:
        match = DATE.fullmatch(text)
        if match:
            day = [int(g) for g in match.groups()]
            return datetime(*day, 23, 59, 59, 999999) if upper else datetime(*day)
        match = DATETIME.fullmatch(text)
        if match:
            *fields, fraction = match.groups()
            return datetime(*map(int, fields), int((fraction or "0").ljust(6, "0")))
    except ValueError:
        return None
    return None


def assert_answer(response, expected, context):
    body = response.get_json(silent=True)
    assert response.status_code != 500, (context, body)
    assert response.status_code in expected, (context, response.status_code, body)
    if response.status_code >= 400:
        assert isinstance(body, dict) and list(body) == ["error"], (context, body)
        assert isinstance(body["error"], str) and body["error"], (context, body)
    return body


def check_post(store, path, raw, content_type):
    expected = expected_post(store, path, raw)
    event(f"{path} {expected}")  # --hypothesis-show-statistics: how often each case came
    before, events = store.snapshot(), store.events()
    response = store.api.client.post(path, data=raw, content_type=content_type)
    body = assert_answer(response, {expected}, (path, raw[:200], content_type))
    if expected == 200:
        uuid = json.loads(raw)["uuid"].lower()
        assert body["uuid"] == uuid
        store.started[uuid] = path == "/followup"
        assert store.events() == events + 1
    else:
        assert store.snapshot() == before, (path, raw[:200])


# --- strategies -----------------------------------------------------------------------


def path_segments(max_size):
    """Any text that leaves no empty segment in a path: not empty, no leading, trailing or
    doubled '/' (see test_paths_with_an_empty_segment_get_a_json_error for those)."""
    return st.text(min_size=1, max_size=max_size).filter(
        lambda t: not t.startswith("/") and not t.endswith("/") and "//" not in t)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=8)
uuid_like = st.one_of(
    st.uuids().map(str), st.uuids().map(lambda u: str(u).upper()), st.uuids().map(lambda u: u.hex),
    st.uuids().map(lambda u: "{%s}" % u), st.uuids().map(lambda u: f"urn:uuid:{u}"),
    st.uuids().map(lambda u: f"{u}\n"), st.uuids().map(lambda u: f" {u}"),
    st.uuids().map(lambda u: str(u).replace("-", "", 1) + "-"),
    st.uuids().map(lambda u: str(u)[:-1] + "\u0660"),  # an Arabic-Indic digit
    st.text(max_size=40), json_values)
symbol_like = st.one_of(
    st.sampled_from(list(ascii_lowercase) + ["E", "ab", "é", "", " ", "a\n", "\u0430", "ａ",
                                             "1", "_", "\x00", "z "]),
    st.text(max_size=3), json_values)
object_bodies = st.fixed_dictionaries({}, optional={
    "uuid": uuid_like, "symbol": symbol_like, "extra": json_values})
encodings = st.sampled_from(["utf-8", "utf-16", "utf-32"])
raw_bodies = st.one_of(
    st.tuples(object_bodies, encodings).map(lambda b: json.dumps(b[0]).encode(b[1])),
    st.tuples(object_bodies, encodings).map(
        lambda b: json.dumps(b[0], ensure_ascii=False).encode(b[1], "surrogatepass")),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
    # Deeply nested, terminated or not (hypothesis raises the recursion limit while it
    # runs, so past-the-limit nesting is tested on its own below).
    st.tuples(st.sampled_from([b"[", b'{"uuid":', b'{"a":[']), st.integers(1, 1024)).map(
        lambda b: (b[0] * b[1])[:1024]),
    st.integers(1, 512).map(lambda n: b"[" * n + b"]" * n),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.tuples(object_bodies, st.integers(0, 64 * 1024)).map(
        lambda b: json.dumps({**b[0], "pad": "x" * b[1]}).encode()),
)
content_types = st.one_of(
    st.none(),
    st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded",
                     "multipart/form-data", "multipart/form-data; boundary=x",
                     "application/json; charset=latin-1", "application/octet-stream"]),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40))


@EXAMPLES
@given(path=st.sampled_from(["/initial", "/followup"]), raw=raw_bodies,
       content_type=content_types)
def test_any_post_body(store, path, raw, content_type):
    check_post(store, path, raw, content_type)


@pytest.mark.parametrize("raw", [b"[" * 1000, b"[" * 1024, b'{"uuid":' * 128])
@pytest.mark.parametrize("path", ["/initial", "/followup"])
def test_bodies_nested_past_the_recursion_limit(store, path, raw):
    before = store.snapshot()
    assert_answer(store.api.client.post(path, data=raw, content_type="application/json"),
                  {400}, (path, raw[:20]))
    assert store.snapshot() == before


@EXAMPLES
@given(known=st.booleans(), pick=st.integers(0, 10_000), upper=st.booleans(), fresh=st.uuids(),
       path=st.sampled_from(["/initial", "/followup"]), symbol=symbol_like)
def test_valid_uuids_known_or_not(store, known, pick, upper, fresh, path, symbol):
    # Well-formed uuids, often of conversations this store has seen, in either case.
    uuid = sorted(store.started)[pick % len(store.started)] if known and store.started else str(fresh)
    uuid = uuid.upper() if upper else uuid
    body = {"uuid": uuid, "symbol": symbol} if path == "/initial" else {"uuid": uuid}
    check_post(store, path, json.dumps(body).encode(), "application/json")


@EXAMPLES
@given(method=st.sampled_from(["GET", "PUT", "DELETE", "PATCH"]),
       path=st.sampled_from(["/initial", "/followup"]), raw=st.binary(max_size=100))
def test_other_methods_are_json_405(store, method, path, raw):
    before = store.snapshot()
    response = store.api.client.open(path, method=method, data=raw)
    assert_answer(response, {405}, (method, path))
    assert store.snapshot() == before


@EXAMPLES
@given(symbol=st.one_of(path_segments(4), st.sampled_from(list(ascii_lowercase))))
def test_any_symbol_dashboard_path(store, symbol):
    before = store.snapshot()
    response = store.api.client.get("/dashboard/symbol/" + quote(symbol, safe=""))
    valid = len(symbol) == 1 and symbol in ascii_lowercase
    # A symbol that holds '/' does not reach the route: 404.
    body = assert_answer(response, {200} if valid else {400, 404}, symbol)
    if valid:
        assert body["symbol"] == symbol and body["count"] >= 0
    assert store.snapshot() == before


def render(moment, form, digits):
    """A moment as text in one of the forms docs/API.md section 2 allows, or a near miss."""
    date = f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
    clock = f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    fraction = f"{moment.microsecond:06d}"[:digits]
    return {
        "date": date,
        "space": f"{date} {clock}",
        "T": f"{date}T{clock}",
        "fraction": f"{date} {clock}.{fraction}",
        "T-fraction": f"{date}T{clock}.{fraction}",
        # near misses
        "minutes": f"{date} {clock[:5]}",
        "zulu": f"{date}T{clock}Z",
        "seven-digits": f"{date} {clock}.{fraction}1234567"[:len(date) + 17],
        "compact": date.replace("-", ""),
        "slashes": date.replace("-", "/"),
        "two-spaces": f"{date}  {clock}",
    }[form]


datetime_texts = st.builds(
    render, st.datetimes(min_value=datetime(1, 1, 1)),
    st.sampled_from(["date", "space", "T", "fraction", "T-fraction", "minutes", "zulu",
                     "seven-digits", "compact", "slashes", "two-spaces"]),
    st.integers(1, 6))
bounds = st.one_of(datetime_texts, path_segments(30),
                   st.sampled_from(["2024-02-30", "2023-02-29", "2024-02-29", "0000-01-01",
                                    "0001-01-01", "9999-12-31", "2024-13-01",
                                    "2024-03-05 24:00:00", "2024-03-05 23:59:60",
                                    "２０２４-03-05", "2024-03-05 10:00:00.1234567"]))


@EXAMPLES
@given(lower=bounds, upper=bounds)
def test_any_range_bounds(store, lower, upper):
    before = store.snapshot()
    low, high = parse_bound(lower, False), parse_bound(upper, True)
    valid = low is not None and high is not None and low <= high
    path = f"/dashboard/range/{quote(lower, safe='')}/{quote(upper, safe='')}"
    body = assert_answer(store.api.client.get(path), {200} if valid else {400, 404},
                         (lower, upper))
    if valid:
        assert isinstance(body, list)
    assert store.snapshot() == before


@pytest.mark.parametrize("path", [
    "/dashboard/symbol//a", "/dashboard/symbol/%2Fa", "/dashboard/symbol//",
    "/dashboard/range//2024-01-02", "/dashboard/range/2024-01-01//2024-01-02",
    "/dashboard/range/%2F2024-01-01/2024-01-02", "//dashboard/symbol/a",
])
def test_paths_with_an_empty_segment_get_a_json_error(make_app, path):
    # Routing is the app's, the same for every backend: the reference is enough here.
    store = Store(make_app("sqlite"), None)
    response = store.api.client.get(path)
    assert_answer(response, {400, 404}, path)
    assert store.snapshot() == (0, 0)
