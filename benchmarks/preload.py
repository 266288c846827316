"""Stored data made fast, not through the API: synthetic conversations written straight
into SQLite's conversations table, into og.events (then `python -m ingest rebuild`
recomputes Redis from it), or as a backlog of stream entries for the drain (one
partition's stream, or spread over the partitions' streams as the API spreads them).

N events = about 2N/3 conversations, half of them followed up. Timestamps are spread
over today's last hours (UTC), all inside the conversation window (OG_CONVERSATION_TTL's
default), so that a rebuild restores every conversation.
"""
import random
import sqlite3
import string
import time
import uuid as uuidlib

from core import config, keys

SPREAD_S = min(3 * 3600, int(0.9 * config.DEFAULT_CONVERSATION_TTL))
INSERT_ROWS = 5000
"""Rows per multi-row INSERT into og.events."""
XADD_PIPELINE = 5000


class Clock:
    """Epoch microseconds -> 'YYYY-MM-DD HH:MM:SS.ffffff', formatting each second once."""

    def __init__(self):
        self._seconds = {}

    def format(self, micros):
        seconds, fraction = divmod(micros, 1_000_000)
        text = self._seconds.get(seconds)
        if text is None:
            text = self._seconds[seconds] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))
        return f"{text}.{fraction:06d}"


def conversations(events, seed=1):
    """[(uuid, symbol, guess, ts_micros, followup_micros or None)], sorted by ts, whose
    initials and followups add up to `events`."""
    rng = random.Random(seed)
    count = -(-2 * events // 3)
    followed = set(rng.sample(range(count), events - count))
    now = time.time_ns() // 1000
    midnight = now - now % 86_400_000_000
    start = max(midnight, now - SPREAD_S * 1_000_000)
    step = (now - start) / max(1, count)
    out = []
    for index in range(count):
        ts = start + int(index * step)
        follow = ts + rng.randrange(100_000, 5_000_000) if index in followed else None
        out.append((str(uuidlib.UUID(int=rng.getrandbits(128), version=4)),
                    rng.choice(string.ascii_lowercase), rng.random() < 0.5, ts,
                    min(follow, now) if follow else None))
    return out


def into_sqlite(path, events):
    clock = Clock()
    rows = [(u, s, int(g), clock.format(ts), clock.format(f) if f else None)
            for u, s, g, ts, f in conversations(events)]
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA synchronous=OFF")  # this connection only: a bulk load
        connection.execute("BEGIN")
        connection.executemany(
            "INSERT INTO conversations (uuid, symbol, guess, ts, followup_ts) VALUES (?, ?, ?, ?, ?)", rows)
        connection.execute("COMMIT")
    finally:
        connection.close()
    return len(rows)


def event_rows(events):
    """og.events rows (literal SQL tuples) in event-time order, ids shaped like stream ids."""
    clock, items = Clock(), []
    for index, (uuid, symbol, guess, ts, followup) in enumerate(conversations(events)):
        cts = clock.format(ts)
        items.append((ts, f"(0,'{ts // 1000}-{2 * index}','{uuid}','initial','{symbol}',{int(guess)},'{cts}','{cts}')"))
        if followup:
            items.append((followup, f"(0,'{followup // 1000}-{2 * index + 1}','{uuid}','followup',"
                                    f"'{symbol}',{int(guess)},'{clock.format(followup)}','{cts}')"))
    items.sort()
    return [row for _, row in items]


def into_events(connection, events):
    """Multi-row INSERTs into og.events on a PyMySQL connection (autocommit)."""
    rows = event_rows(events)
    with connection.cursor() as cursor:
        for start in range(0, len(rows), INSERT_ROWS):
            cursor.execute("INSERT INTO events (stream, event_id, uuid, kind, symbol, guess, ts,"
                           " conversation_ts) VALUES " + ",".join(rows[start:start + INSERT_ROWS]))
    return len(rows)


def into_streams(redis_client, events, partitions, seed=None):
    """XADD `events` entries over the streams of `partitions` partitions, each entry into
    the partition its uuid maps to (keys.partition_of, as the API does: a followup lands
    beside its initial), fields as core/store/lua/*.lua write them. The same `seed` gives the same entries whatever `partitions` is.

    On a Redis Cluster `redis_client` is a redis.RedisCluster: each pipeline is sent as
    one per node. Returns the number of entries added."""
    if seed is None:
        seed = random.getrandbits(32)
    pipe, added = redis_client.pipeline(transaction=False), 0
    entries = []
    for uuid, symbol, guess, ts, followup in conversations(events, seed=seed):
        g = "1" if guess else "0"
        stream = keys.stream(keys.partition_of(uuid, partitions))
        entries.append((ts, stream, ("initial", uuid, symbol, g, str(ts), str(ts))))
        if followup:
            entries.append((followup, stream, ("followup", uuid, symbol, g, str(followup), str(ts))))
    entries.sort()
    for _, stream, (kind, uuid, symbol, g, ts, cts) in entries:
        pipe.xadd(stream, {"kind": kind, "uuid": uuid, "symbol": symbol, "guess": g, "ts": ts, "cts": cts})
        added += 1
        if added % XADD_PIPELINE == 0:
            pipe.execute()
    pipe.execute()
    return added


def into_stream(redis_client, events):
    """XADD `events` entries into partition 0's stream, fields as core/store/lua/*.lua write."""
    return into_streams(redis_client, events, 1)
