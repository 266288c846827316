"""Stored data made fast, not through the API: synthetic conversations straight into SQLite,
og.events or the streams. N events = about 2N/3 conversations, half followed up, over today's
last hours (UTC), all inside the conversation window: a rebuild restores every one."""
import functools
import random
import sqlite3
import string
import time
import uuid as uuidlib

from core import config, keys

SPREAD_S = min(3 * 3600, int(0.9 * config.DEFAULT_CONVERSATION_TTL))
BATCH = 5000  # rows per multi-row INSERT into og.events; XADDs per pipeline


@functools.lru_cache(maxsize=1 << 16)
def _second(seconds):
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))


def _timestamp(micros):
    """Epoch microseconds -> 'YYYY-MM-DD HH:MM:SS.ffffff' (each second formatted once)."""
    seconds, fraction = divmod(micros, 1_000_000)
    return f"{_second(seconds)}.{fraction:06d}"


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
    rows = [(u, s, int(g), _timestamp(ts), _timestamp(f) if f else None)
            for u, s, g, ts, f in conversations(events)]
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA synchronous=OFF")  # this connection only: a bulk load
        connection.execute("BEGIN")
        connection.executemany("INSERT INTO conversations (uuid, symbol, guess, ts, followup_ts)"
                               " VALUES (?, ?, ?, ?, ?)", rows)
        connection.execute("COMMIT")
    finally:
        connection.close()


def into_events(connection, events):
    """Multi-row INSERTs into og.events on a PyMySQL connection (autocommit), in event-time
    order, ids shaped like stream ids."""
    items = []
    for index, (uuid, symbol, guess, ts, followup) in enumerate(conversations(events)):
        for kind, at, number in (("initial", ts, 2 * index), ("followup", followup, 2 * index + 1)):
            if at:
                items.append((at, f"(0,'{at // 1000}-{number}','{uuid}','{kind}','{symbol}',"
                                  f"{int(guess)},'{_timestamp(at)}','{_timestamp(ts)}')"))
    rows = [row for _, row in sorted(items)]
    with connection.cursor() as cursor:
        for start in range(0, len(rows), BATCH):
            cursor.execute("INSERT INTO events (stream, event_id, uuid, kind, symbol, guess, ts,"
                           " conversation_ts) VALUES " + ",".join(rows[start:start + BATCH]))


def into_streams(redis_client, events, partitions, seed=None):
    """XADD `events` entries, each into its uuid's partition's stream (keys.partition_of, as
    the API), fields as core/store/lua/*.lua write them; the same `seed`, the same entries
    whatever `partitions` is. Returns the number of entries added."""
    entries = []
    seed = random.getrandbits(32) if seed is None else seed
    for uuid, symbol, guess, ts, followup in conversations(events, seed):
        stream, g = keys.stream(keys.partition_of(uuid, partitions)), "1" if guess else "0"
        for kind, at in (("initial", ts), ("followup", followup)):
            if at:
                entries.append((at, stream, (kind, uuid, symbol, g, str(at), str(ts))))
    entries.sort()
    pipe = redis_client.pipeline(transaction=False)
    for start in range(0, len(entries), BATCH):
        for _, stream, fields in entries[start:start + BATCH]:
            pipe.xadd(stream, dict(zip(("kind", "uuid", "symbol", "guess", "ts", "cts"), fields)))
        pipe.execute()
    return len(entries)
