"""An uneven 30-day store of events for the range scenario, generated inside MariaDB.

The shape is drawn in Python, per minute of the last DAYS days (ending an hour before
now, so every followup is in the past): a daily cycle (quiet nights, a busy afternoon,
an evening peak), quieter weekends, day-to-day and hour-to-hour noise, a few bursts
(minutes at 8-40x the rate, most of them on one hot symbol, crowded into the start of
the minute) and a few outages (minutes with no event at all). Each minute gets its
number of conversations by largest remainder, so a store holds exactly N events.

The rows themselves are made by MariaDB: the minutes go into a helper table, and
INSERT ... SELECT joins it with the Sequence engine (seq_0_to_K) to make one row per
conversation, every field a deterministic function of the conversation number g
(CRC32/MD5 of a seed and g). A second INSERT ... SELECT per chunk adds the followups:
of each pair of conversations (2q, 2q+1) one is followed up (which one: CRC32), so
followups are ~1/3 of the events; a followup has its conversation's uuid, symbol and
guess, conversation_ts = the initial's ts and ts = that plus 0.1 s .. 30 min (mostly
seconds). Event ids are shaped like stream ids, "<ms of ts>-<2g or 2g+1>" (unique).

Rows are made minute after minute, so both og.events indexes grow near their right
end (the primary key starts with the ms of ts): no random B-tree inserts.
"""
import logging
import math
import random
import sqlite3
import string
import time
from datetime import datetime, timedelta

from server.initdb import init_db

log = logging.getLogger("benchmarks")

DAYS = 30
MINUTES = DAYS * 24 * 60
CHUNK_CONVERSATIONS = 400_000
"""Conversations per INSERT ... SELECT (a statement, a transaction)."""
EPOCH = datetime(1970, 1, 1)
MINUTES_TABLE = "bench_minutes"


def window_end(now=None):
    """The end of the data: the last whole hour, less one (followups come later)."""
    now = now or datetime.utcnow()
    return now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)


def profile(end, seed=7):
    """[(minute start, weight, hot symbol or '', hot share %, skew)] for DAYS days to `end`,
    and the description of its bursts and outages."""
    rng = random.Random(seed)
    start = end - timedelta(minutes=MINUTES)
    day_noise = [rng.lognormvariate(0, 0.35) for _ in range(DAYS + 2)]
    hour_noise = [rng.lognormvariate(0, 0.3) for _ in range((DAYS + 2) * 24)]
    trending = [rng.choice(string.ascii_lowercase) for _ in range((DAYS + 2) * 24)]
    minutes = []
    for m in range(MINUTES):
        moment = start + timedelta(minutes=m)
        hour = moment.hour + moment.minute / 60
        cycle = (0.06 + math.exp(-((hour - 14.5) / 3.5) ** 2)
                 + 0.6 * math.exp(-((hour - 20.5) / 1.5) ** 2) + 0.2 * math.exp(-((hour - 9) / 1.2) ** 2))
        weekend = 0.55 if moment.weekday() >= 5 else 1.0
        weight = cycle * weekend * day_noise[m // 1440] * hour_noise[m // 60] * rng.uniform(0.8, 1.2)
        # Every hour has a trending symbol that takes 15% of its conversations.
        minutes.append([moment, weight, trending[m // 60], 15, 1.0])
    bursts, outages = [], []
    for _ in range(14):
        first, length = rng.randrange(MINUTES - 40), rng.choice((1, 2, 3, 5, 10, 20, 30))
        factor, symbol = rng.uniform(8, 40), rng.choice(string.ascii_lowercase)
        share, skew = rng.randrange(50, 91), rng.uniform(2, 5)
        for m in range(first, first + length):
            minutes[m][1] *= factor
            minutes[m][2:] = [symbol, share, skew]
        bursts.append({"start": str(minutes[first][0]), "minutes": length,
                       "factor": round(factor, 1), "symbol": symbol, "share_pct": share})
    for _ in range(3):
        first, length = rng.randrange(MINUTES - 120), rng.randrange(20, 120)
        for m in range(first, first + length):
            minutes[m][1] = 0.0
        outages.append({"start": str(minutes[first][0]), "minutes": length})
    return minutes, {"bursts": bursts, "outages": outages}


def apportion(weights, total):
    """Integer counts proportional to weights, summing to total (largest remainder)."""
    whole = sum(weights)
    shares = [w * total / whole for w in weights]
    counts = [int(s) for s in shares]
    short = total - sum(counts)
    for i in sorted(range(len(shares)), key=lambda i: counts[i] - shares[i])[:short]:
        counts[i] += 1
    return counts


def symbol_letters(seed=11, length=1000):
    """A string in which each letter appears in proportion to a Zipf-like weight."""
    rng = random.Random(seed)
    letters = list(string.ascii_lowercase)
    rng.shuffle(letters)
    counts = apportion([1 / (rank + 1) ** 0.9 for rank in range(26)], length - 26)
    return "".join(letter * (count + 1) for letter, count in zip(letters, counts))


_UUID = ("CONCAT(LEFT(h, 8), '-', SUBSTR(h, 9, 4), '-4', SUBSTR(h, 14, 3), '-',"
         " SUBSTR('89ab', 1 + (ASCII(SUBSTR(h, 17, 1)) & 3), 1), SUBSTR(h, 18, 3), '-', RIGHT(h, 12))")
_CONVERSATIONS = (
    # One row per conversation of the chunk's minutes; o = its microsecond in its minute.
    "SELECT g, epoch_ms, start, o, hot, hot_pct, MD5(CONCAT('u{seed}', g)) AS h FROM ("
    " SELECT m.first_g + s.seq AS g, m.epoch_ms, m.start, m.hot, m.hot_pct,"
    " FLOOR(POW(CRC32(CONCAT('t{seed}', m.first_g + s.seq)) / 4294967296, m.skew) * 60000000) AS o"
    " FROM {minutes} AS m JOIN seq_0_to_{most} AS s ON s.seq < m.n"
    " WHERE m.id >= %s AND m.id < %s) AS c")
_SYMBOL = ("IF(MOD(CRC32(CONCAT('h{seed}', g)), 100) < hot_pct, hot,"
           " SUBSTR('{letters}', 1 + MOD(CRC32(CONCAT('s{seed}', g)), {length}), 1))")
_INITIALS = (
    "INSERT INTO events (stream, event_id, uuid, kind, symbol, guess, ts, conversation_ts)"
    " SELECT 0, CONCAT(epoch_ms + o DIV 1000, '-', 2 * g), " + _UUID + ", 'initial', "
    + _SYMBOL + ", CRC32(CONCAT('v{seed}', g)) & 1,"
    " start + INTERVAL o MICROSECOND, start + INTERVAL o MICROSECOND FROM (" + _CONVERSATIONS + ") AS x")
_FOLLOWUPS = (
    # d: the followup's delay in microseconds, 0.1 s to 30 min, mostly a few seconds.
    "INSERT INTO events (stream, event_id, uuid, kind, symbol, guess, ts, conversation_ts)"
    " SELECT 0, CONCAT(epoch_ms + (o + d) DIV 1000, '-', 2 * g + 1), " + _UUID + ", 'followup', "
    + _SYMBOL + ", CRC32(CONCAT('v{seed}', g)) & 1,"
    " start + INTERVAL (o + d) MICROSECOND, start + INTERVAL o MICROSECOND FROM ("
    " SELECT y.*, 100000 + FLOOR(POW(CRC32(CONCAT('d{seed}', g)) / 4294967296, 6) * 1800000000) AS d"
    " FROM (" + _CONVERSATIONS + ") AS y"
    " WHERE (g - {first}) DIV 2 < {pairs}"
    " AND MOD(g - {first}, 2) = CRC32(CONCAT('f{seed}', (g - {first}) DIV 2)) & 1) AS x")


def generate(connection, events, end, first_g=0, seed="a"):
    """Insert `events` events over the DAYS days before `end` into og.events (PyMySQL
    connection on the store's database, autocommit). Conversation numbers start at
    first_g (a store grown twice needs disjoint ones). Returns a description."""
    began = time.monotonic()
    conversations = -(-2 * events // 3)
    followups = events - conversations  # <= conversations // 2: one of a pair at most
    minutes, shape = profile(end)
    counts = apportion([m[1] for m in minutes], conversations)
    most = max(counts)
    letters = symbol_letters()
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {MINUTES_TABLE}")
        cursor.execute(
            f"CREATE TABLE {MINUTES_TABLE} (id INT PRIMARY KEY, start DATETIME(6) NOT NULL,"
            " epoch_ms BIGINT NOT NULL, first_g BIGINT NOT NULL, n INT NOT NULL,"
            " hot CHAR(1) NOT NULL, hot_pct INT NOT NULL, skew DOUBLE NOT NULL) ENGINE=InnoDB")
        rows, g = [], first_g
        for i, ((moment, _, hot, share, skew), n) in enumerate(zip(minutes, counts)):
            epoch_ms = int((moment - EPOCH).total_seconds()) * 1000
            rows.append(f"({i},'{moment:%Y-%m-%d %H:%M:%S}',{epoch_ms},{g},{n},'{hot}',{share},{skew!r})")
            g += n
        for at in range(0, len(rows), 5000):
            cursor.execute(f"INSERT INTO {MINUTES_TABLE} VALUES " + ",".join(rows[at:at + 5000]))
        # Chunks of whole minutes holding about CHUNK_CONVERSATIONS conversations each.
        bounds, held = [0], 0
        for i, n in enumerate(counts):
            held += n
            if held >= CHUNK_CONVERSATIONS:
                bounds.append(i + 1)
                held = 0
        if bounds[-1] != len(counts):
            bounds.append(len(counts))
        fields = {"seed": seed, "minutes": MINUTES_TABLE, "most": max(most, 1), "letters": letters,
                  "length": len(letters), "first": first_g, "pairs": followups}
        initials, followed = _INITIALS.format(**fields), _FOLLOWUPS.format(**fields)
        added = 0
        for lo, hi in zip(bounds, bounds[1:]):
            cursor.execute(initials, (lo, hi))
            added += cursor.rowcount
            cursor.execute(followed, (lo, hi))
            added += cursor.rowcount
        cursor.execute(f"DROP TABLE {MINUTES_TABLE}")
    if added != events:
        raise RuntimeError(f"generated {added} events, wanted {events}")
    seconds = time.monotonic() - began
    log.info("range store: %d events generated in MariaDB in %.1f s (%.0f events/s, %d chunks)",
             added, seconds, added / seconds, len(bounds) - 1)
    busiest = max(range(len(counts)), key=counts.__getitem__)
    return {"events": added, "conversations": conversations, "followups": followups,
            "seconds": round(seconds, 1), "chunks": len(bounds) - 1, "first_g": first_g,
            "from": str(minutes[0][0]), "to": str(end),
            "busiest_minute": {"start": str(minutes[busiest][0]), "conversations": counts[busiest]},
            "quietest_hour_conversations": min(sum(counts[h:h + 60]) for h in range(0, MINUTES, 60)),
            "busiest_hour_conversations": max(sum(counts[h:h + 60]) for h in range(0, MINUTES, 60)),
            "empty_minutes": sum(1 for n in counts if n == 0), **shape}


SQLITE_BATCH = 50_000


def copy_to_sqlite(mariadb_connection, path):
    """The same conversations into a new reference SQLite file (server/initdb.py's
    schema), in time order as the API would have inserted them. Returns (rows, seconds)."""
    import pymysql.cursors

    began = time.monotonic()
    init_db(path)
    fmt = "'%Y-%m-%d %H:%i:%s.%f'"
    followed = {}
    with mariadb_connection.cursor(pymysql.cursors.SSCursor) as cursor:
        cursor.execute(f"SELECT uuid, DATE_FORMAT(ts, {fmt}) FROM events WHERE kind = 'followup'")
        for uuid, ts in cursor:
            followed[uuid] = ts
    sqlite = sqlite3.connect(path, isolation_level=None)
    rows = 0
    try:
        sqlite.execute("PRAGMA synchronous=OFF")  # this connection only: a bulk load
        sqlite.execute("PRAGMA cache_size=-1000000")
        sqlite.execute("BEGIN")
        with mariadb_connection.cursor(pymysql.cursors.SSCursor) as cursor:
            cursor.execute(f"SELECT uuid, symbol, guess, DATE_FORMAT(ts, {fmt}) FROM events"
                           " WHERE kind = 'initial' ORDER BY stream, event_id")
            while True:
                batch = cursor.fetchmany(SQLITE_BATCH)
                if not batch:
                    break
                sqlite.executemany(
                    "INSERT INTO conversations (uuid, symbol, guess, ts, followup_ts) VALUES (?, ?, ?, ?, ?)",
                    [(u, s, g, ts, followed.get(u)) for u, s, g, ts in batch])
                rows += len(batch)
        sqlite.execute("COMMIT")
    finally:
        sqlite.close()
    return rows, round(time.monotonic() - began, 1)
