"""An uneven 30-day history in og.events, made inside MariaDB (the shape per minute drawn here,
the rows by INSERT ... SELECT over the Sequence engine), and its copy into SQLite."""
import itertools
import logging
import math
import random
import sqlite3
import string
import time
from contextlib import closing
from datetime import datetime, timedelta

import pymysql.cursors

from server.initdb import init_db

log = logging.getLogger("benchmarks")

DAYS = 30
MINUTES = DAYS * 24 * 60
CHUNK_CONVERSATIONS = 400_000  # per INSERT ... SELECT (a statement, a transaction)
EPOCH = datetime(1970, 1, 1)
MINUTES_TABLE = "bench_minutes"


def window_end():
    """The last whole hour, less one: every followup of the history is in the past."""
    return datetime.utcnow().replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)


def profile(end):
    """[[minute start, weight, hot symbol, hot share %, skew]] for the DAYS days to `end`, and
    a description of its bursts and outages."""
    rng = random.Random(7)
    start = end - timedelta(minutes=MINUTES)
    day_noise = [rng.lognormvariate(0, 0.35) for _ in range(DAYS + 2)]
    hour_noise = [rng.lognormvariate(0, 0.3) for _ in range((DAYS + 2) * 24)]
    trending = [rng.choice(string.ascii_lowercase) for _ in range((DAYS + 2) * 24)]
    minutes = []
    for m in range(MINUTES):
        moment = start + timedelta(minutes=m)
        hour = moment.hour + moment.minute / 60
        # Quiet nights, a busy afternoon, an evening peak and a small morning one.
        cycle = (0.06 + math.exp(-((hour - 14.5) / 3.5) ** 2)
                 + 0.6 * math.exp(-((hour - 20.5) / 1.5) ** 2)
                 + 0.2 * math.exp(-((hour - 9) / 1.2) ** 2))
        weekend = 0.55 if moment.weekday() >= 5 else 1.0
        weight = (cycle * weekend * day_noise[m // 1440] * hour_noise[m // 60]
                  * rng.uniform(0.8, 1.2))
        # Every hour has a trending symbol that takes 15% of its conversations.
        minutes.append([moment, weight, trending[m // 60], 15, 1.0])
    bursts, outages = [], []
    for _ in range(14):
        # Minutes at 8-40x the rate, mostly on one symbol, crowded into the minute's start.
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
    for i in sorted(range(len(shares)), key=lambda i: counts[i] - shares[i])[:total - sum(counts)]:
        counts[i] += 1
    return counts


def symbol_letters():
    """1,000 letters, each in proportion to a Zipf-like weight."""
    letters = list(string.ascii_lowercase)
    random.Random(11).shuffle(letters)
    counts = apportion([1 / (rank + 1) ** 0.9 for rank in range(26)], 1000 - 26)
    return "".join(letter * (count + 1) for letter, count in zip(letters, counts))


# Every field is a function of the conversation number g; event ids are shaped like stream
# ids, "<ms of ts>-<2g or 2g+1>", and rows come minute after minute, so both og.events indexes
# grow at their right end.
_UUID = ("CONCAT(LEFT(h, 8), '-', SUBSTR(h, 9, 4), '-4', SUBSTR(h, 14, 3), '-',"
         " SUBSTR('89ab', 1 + (ASCII(SUBSTR(h, 17, 1)) & 3), 1), SUBSTR(h, 18, 3), '-',"
         " RIGHT(h, 12))")
_CONVERSATIONS = (
    # One row per conversation of the chunk's minutes; o = its microsecond in its minute.
    "SELECT g, epoch_ms, start, o, hot, hot_pct, MD5(CONCAT('u{seed}', g)) AS h FROM ("
    " SELECT m.first_g + s.seq AS g, m.epoch_ms, m.start, m.hot, m.hot_pct,"
    " FLOOR(POW(CRC32(CONCAT('t{seed}', m.first_g + s.seq)) / 4294967296, m.skew) * 60000000)"
    " AS o FROM {minutes} AS m JOIN seq_0_to_{most} AS s ON s.seq < m.n"
    " WHERE m.id >= %s AND m.id < %s) AS c")
_SYMBOL = ("IF(MOD(CRC32(CONCAT('h{seed}', g)), 100) < hot_pct, hot,"
           " SUBSTR('{letters}', 1 + MOD(CRC32(CONCAT('s{seed}', g)), {length}), 1))")
_INSERT = ("INSERT INTO events (stream, event_id, uuid, kind, symbol, guess, ts, conversation_ts)"
           " SELECT 0, ")
_INITIALS = (
    _INSERT + "CONCAT(epoch_ms + o DIV 1000, '-', 2 * g), " + _UUID + ", 'initial', "
    + _SYMBOL + ", CRC32(CONCAT('v{seed}', g)) & 1, start + INTERVAL o MICROSECOND,"
    " start + INTERVAL o MICROSECOND FROM (" + _CONVERSATIONS + ") AS x")
_FOLLOWUPS = (
    # Of each pair of conversations one is followed up, after d microseconds: 0.1 s to
    # 30 min, mostly a few seconds.
    _INSERT + "CONCAT(epoch_ms + (o + d) DIV 1000, '-', 2 * g + 1), " + _UUID + ", 'followup', "
    + _SYMBOL + ", CRC32(CONCAT('v{seed}', g)) & 1, start + INTERVAL (o + d) MICROSECOND,"
    " start + INTERVAL o MICROSECOND FROM ("
    " SELECT y.*, 100000 + FLOOR(POW(CRC32(CONCAT('d{seed}', g)) / 4294967296, 6) * 1800000000)"
    " AS d FROM (" + _CONVERSATIONS + ") AS y WHERE (g - {first}) DIV 2 < {pairs}"
    " AND MOD(g - {first}, 2) = CRC32(CONCAT('f{seed}', (g - {first}) DIV 2)) & 1) AS x")


def generate(connection, events, end, first_g=0, seed="a"):
    """Insert `events` events over the DAYS days before `end` (PyMySQL connection on the
    store's database, autocommit); conversation numbers from first_g (a store grown twice
    needs disjoint ones). Returns a description."""
    began = time.monotonic()
    conversations = -(-2 * events // 3)
    followups = events - conversations  # <= conversations // 2: one of a pair at most
    minutes, shape = profile(end)
    counts = apportion([m[1] for m in minutes], conversations)
    letters = symbol_letters()
    rows = [(i, moment, int((moment - EPOCH).total_seconds()) * 1000, g, n, hot, share, skew)
            for i, ((moment, _, hot, share, skew), n, g) in enumerate(
                zip(minutes, counts, itertools.accumulate(counts, initial=first_g)))]
    bounds, held = [0], 0  # chunks of whole minutes, of about CHUNK_CONVERSATIONS each
    for i, n in enumerate(counts, 1):
        held += n
        if held >= CHUNK_CONVERSATIONS or i == len(counts):
            bounds.append(i)
            held = 0
    fields = {"seed": seed, "minutes": MINUTES_TABLE, "most": max(max(counts), 1),
              "letters": letters, "length": len(letters), "first": first_g, "pairs": followups}
    statements = [statement.format(**fields) for statement in (_INITIALS, _FOLLOWUPS)]
    added = 0
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {MINUTES_TABLE}")
        cursor.execute(
            f"CREATE TABLE {MINUTES_TABLE} (id INT PRIMARY KEY, start DATETIME(6) NOT NULL,"
            " epoch_ms BIGINT NOT NULL, first_g BIGINT NOT NULL, n INT NOT NULL,"
            " hot CHAR(1) NOT NULL, hot_pct INT NOT NULL, skew DOUBLE NOT NULL) ENGINE=InnoDB")
        cursor.executemany(f"INSERT INTO {MINUTES_TABLE} VALUES ({', '.join(['%s'] * 8)})", rows)
        for lo, hi in zip(bounds, bounds[1:]):
            for statement in statements:
                cursor.execute(statement, (lo, hi))
                added += cursor.rowcount
        cursor.execute(f"DROP TABLE {MINUTES_TABLE}")
    if added != events:
        raise RuntimeError(f"generated {added} events, wanted {events}")
    seconds = time.monotonic() - began
    log.info("range store: %d events generated in MariaDB in %.1f s (%.0f events/s, %d chunks)",
             added, seconds, added / seconds, len(bounds) - 1)
    busiest = max(range(len(counts)), key=counts.__getitem__)
    hours = [sum(counts[h:h + 60]) for h in range(0, MINUTES, 60)]
    return {"events": added, "conversations": conversations, "followups": followups,
            "seconds": round(seconds, 1), "chunks": len(bounds) - 1, "first_g": first_g,
            "from": str(minutes[0][0]), "to": str(end),
            "busiest_minute": {"start": str(minutes[busiest][0]), "conversations": counts[busiest]},
            "quietest_hour_conversations": min(hours), "busiest_hour_conversations": max(hours),
            "empty_minutes": counts.count(0), **shape}


def copy_to_sqlite(mariadb, path):
    """The store's conversations into a new SQLite file (server/initdb.py's schema), in the
    order the API would have inserted them. Returns (rows, seconds)."""
    began = time.monotonic()
    init_db(path)
    ts = "DATE_FORMAT(ts, '%Y-%m-%d %H:%i:%s.%f')"
    with mariadb.cursor(pymysql.cursors.SSCursor) as cursor:
        cursor.execute(f"SELECT uuid, {ts} FROM events WHERE kind = 'followup'")
        followed = dict(cursor)
    with closing(sqlite3.connect(path, isolation_level=None)) as sqlite:
        sqlite.execute("PRAGMA synchronous=OFF")  # this connection only: a bulk load
        sqlite.execute("PRAGMA cache_size=-1000000")
        sqlite.execute("BEGIN")
        with mariadb.cursor(pymysql.cursors.SSCursor) as cursor:
            cursor.execute(f"SELECT uuid, symbol, guess, {ts} FROM events"
                           " WHERE kind = 'initial' ORDER BY stream, event_id")
            rows = sqlite.executemany("INSERT INTO conversations (uuid, symbol, guess, ts,"
                                      " followup_ts) VALUES (?, ?, ?, ?, ?)",
                                      ((*row, followed.get(row[0])) for row in cursor)).rowcount
        sqlite.execute("COMMIT")
    return rows, round(time.monotonic() - began, 1)
