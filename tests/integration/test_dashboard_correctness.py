"""The dashboards against expectations computed in the test from a seeded sequence of
conversations, followups and rejected repeats, on the sqlite reference backend."""
import contextlib
import random
import sqlite3
import uuid
from datetime import datetime, timezone
from string import ascii_lowercase

from tests.dashboards import parse_ts, range_dashboard, summaries, symbol_dashboard

SEED = 20240305
CONVERSATIONS = 300
UNUSED = "z"  # never sent: its dashboard must stay empty
SYMBOLS = ascii_lowercase.replace(UNUSED, "")


def utc_now():
    return datetime.now(timezone.utc).replace(tzinfo=None)


def stored_timestamps(path):
    with contextlib.closing(sqlite3.connect(path)) as db:
        return dict(db.execute("SELECT uuid, ts FROM conversations"))


def test_dashboards_match_an_independent_count(make_app):
    api = make_app("sqlite", OG_SEED=SEED)
    rng = random.Random(SEED)
    started = []        # [uuid, symbol, followed up?, wall-clock window of the /initial]
    rejected = 0

    def post(path, body, expected):
        response = api.client.post(path, json=body)
        assert response.status_code == expected, (path, body, response.get_json())

    for _ in range(CONVERSATIONS):
        conversation, symbol = str(uuid.uuid4()), rng.choice(SYMBOLS)
        before = utc_now()
        post("/initial", {"uuid": conversation, "symbol": symbol}, 200)
        started.append([conversation, symbol, False, (before, utc_now())])
        # Followups come later and out of order; some repeat, some name no conversation.
        for _ in range(rng.choice([0, 0, 1, 2])):
            entry = rng.choice(started)
            post("/followup", {"uuid": entry[0]}, 409 if entry[2] else 200)
            entry[2] = True
        if rng.random() < 0.05:
            post("/followup", {"uuid": str(uuid.uuid4())}, 404)
            rejected += 1
        if rng.random() < 0.05:
            entry = rng.choice(started)
            post("/initial", {"uuid": entry[0], "symbol": rng.choice(SYMBOLS)}, 409)
            rejected += 1

    stamps = stored_timestamps(api.sqlite_path)
    assert len(stamps) == CONVERSATIONS and rejected > 0
    for conversation, _, _, (before, after) in started:
        # Each stored time is the UTC time of its own /initial.
        assert before <= parse_ts(stamps[conversation]) <= after
    conversations = [(symbol, stamps[c], followed) for c, symbol, followed, _ in started]
    expected = summaries(conversations)
    followups = sum(followed for _, _, followed in conversations)
    assert sum(row["count"] for row in expected) == CONVERSATIONS
    assert 0 < followups < CONVERSATIONS and len(expected) >= 20

    for symbol in ascii_lowercase:
        response = api.client.get(f"/dashboard/symbol/{symbol}")
        assert response.status_code == 200
        assert response.get_json() == symbol_dashboard(conversations, symbol)
    assert api.client.get(f"/dashboard/symbol/{UNUSED}").get_json()["count"] == 0

    first, last = min(map(parse_ts, stamps.values())), max(map(parse_ts, stamps.values()))
    full = f"/dashboard/range/{first:%Y-%m-%d}/{last:%Y-%m-%d}"
    assert api.client.get(full).get_json() == expected

    # A window cut at two stored times: its edges fall exactly on conversations.
    ordered = sorted(map(parse_ts, stamps.values()))
    lower, upper = ordered[CONVERSATIONS // 3], ordered[2 * CONVERSATIONS // 3]
    window = range_dashboard(conversations, lower, upper)
    assert sum(row["count"] for row in window) == CONVERSATIONS // 3 + 1
    path = f"/dashboard/range/{lower:%Y-%m-%d %H:%M:%S.%f}/{upper:%Y-%m-%dT%H:%M:%S.%f}"
    assert api.client.get(path.replace(" ", "%20")).get_json() == window
