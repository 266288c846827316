"""The range dashboard's time buckets: og.range_buckets, kept exact by the ingest worker.

A bucket is (span_s, start, symbol) -> conversations, followups, earliest, latest, over
the conversations whose /initial time falls in [start, start + span_s). Every event is
counted in four buckets, one per span (second, minute, hour, day), in the same
transaction that inserts it into og.events, and only if that INSERT really added it
(ingest/writer.py): a redelivered event adds nothing.

A window [lower, upper] is answered from at most ~2 x (59 + 59 + 23) + days buckets per
symbol, plus a scan of og.events for the parts of the two edge seconds that the window
cuts (window_pieces), so its cost is bounded by buckets, not by events.
"""
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import text

from core import timestamps

SPANS_S = (1, 60, 3600, 86400)
"""Bucket spans in seconds, finest first. Days are UTC days (epoch-aligned)."""
SECOND = 1_000_000
EPOCH = datetime(1970, 1, 1)

# The start of each span's bucket, cut from a 'YYYY-MM-DD HH:MM:SS.ffffff' text.
_STARTS = ((1, lambda s: s), (60, lambda s: s[:17] + "00"), (3600, lambda s: s[:14] + "00:00"),
           (86400, lambda s: s[:11] + "00:00:00"))

_ROW = "(%d,'%s','%s',%d,%d,%s,%s)"
UPSERT = (
    "INSERT INTO range_buckets (span_s, start, symbol, conversations, followups, earliest, latest)"
    " VALUES {values} ON DUPLICATE KEY UPDATE"
    " conversations = conversations + VALUES(conversations),"
    " followups = followups + VALUES(followups),"
    # A bucket with only followups has no earliest/latest (NULL); LEAST/GREATEST of a
    # NULL is NULL, hence the COALESCEs.
    " earliest = LEAST(COALESCE(earliest, VALUES(earliest)), COALESCE(VALUES(earliest), earliest)),"
    " latest = GREATEST(COALESCE(latest, VALUES(latest)), COALESCE(VALUES(latest), latest))"
)


def deltas(events):
    """events: iterable of (kind, symbol, conversation_ts text) that were really inserted.

    Returns the bucket increments [((span_s, start, symbol), [conversations, followups,
    earliest, latest])] sorted by key, so that two workers lock buckets in one order.
    Timestamps are fixed-width texts, so text order is time order.
    """
    seconds = {}
    for kind, symbol, cts in events:
        key = (cts[:19], symbol)
        delta = seconds.get(key)
        if delta is None:
            delta = seconds[key] = [0, 0, None, None]
        if kind == "initial":
            delta[0] += 1
            if delta[2] is None or cts < delta[2]:
                delta[2] = cts
            if delta[3] is None or cts > delta[3]:
                delta[3] = cts
        else:
            delta[1] += 1
    buckets = {}
    for (second, symbol), (n, f, earliest, latest) in seconds.items():
        for span, start_of in _STARTS:
            key = (span, start_of(second), symbol)
            bucket = buckets.get(key)
            if bucket is None:
                buckets[key] = [n, f, earliest, latest]
                continue
            bucket[0] += n
            bucket[1] += f
            if earliest is not None and (bucket[2] is None or earliest < bucket[2]):
                bucket[2] = earliest
            if latest is not None and (bucket[3] is None or latest > bucket[3]):
                bucket[3] = latest
    return sorted(buckets.items())


def upsert_statement(bucket_deltas):
    """One INSERT ... ON DUPLICATE KEY UPDATE adding the deltas to their buckets.

    Values go in as literals: spans are ints, starts and times were cut from datetimes
    formatted by ingest/entries.py, symbols are a-z (all checked there).
    """
    return UPSERT.format(values=",".join(
        _ROW % (span, start, symbol, n, f, _literal(earliest), _literal(latest))
        for (span, start, symbol), (n, f, earliest, latest) in bucket_deltas))


def _literal(moment):
    return "NULL" if moment is None else f"'{moment}'"


# --- reading a window -------------------------------------------------------------


@dataclass(frozen=True)
class Pieces:
    """A window cut into bucket ranges and the raw edges the buckets cannot cover.

    buckets: (span_s, first start, end) with end exclusive, datetimes, always 7 of them
    (an empty one has first == end) so the query has one shape and compiles once.
    edges: ((from, to exclusive), (from, to inclusive)) on og.events.conversation_ts.
    """
    buckets: tuple
    edges: tuple


_SHAPE = (1, 60, 3600, 86400, 3600, 60, 1)
LOWEST = timestamps.to_micros(datetime(1000, 1, 1))
HIGHEST = timestamps.to_micros(datetime(9999, 12, 30))
"""MariaDB's DATETIME range, less a day at the top so that every bucket end exists.
Stored events lie far inside it (16-digit epoch microseconds: 2001 to 2286)."""


def _micros(moment):
    return timestamps.to_micros(moment)


def _moment(micros):
    return EPOCH + timedelta(microseconds=micros)


def window_pieces(lower, upper):
    """Cut [lower, upper] (naive UTC datetimes, both inclusive) into Pieces, or None when
    the window holds no moment an event can have.

    Whole seconds [a, b) go to the buckets: seconds up to the first whole minute,
    minutes up to the first whole hour, hours up to the first whole day, whole days,
    and the same down again at the top. What is left of the two edge seconds,
    [lower, a) and [b, upper], is read from og.events: under one second each.
    """
    low, high = max(_micros(lower), LOWEST), min(_micros(upper), HIGHEST)
    if low > high:
        return None
    lower, upper = _moment(low), _moment(high)
    a = -(-low // SECOND) * SECOND
    b = (high + 1) // SECOND * SECOND
    if a >= b:  # no whole second inside: a window of under two seconds of events
        none = (lower, lower)
        return Pieces(tuple((span, *none) for span in _SHAPE), (none, (lower, upper)))
    below, above = [], []
    lo, hi = a, b
    for span, bigger in zip(SPANS_S, SPANS_S[1:]):
        unit = bigger * SECOND
        lo_aligned, hi_aligned = -(-lo // unit) * unit, hi // unit * unit
        if lo_aligned >= hi_aligned:  # no whole bigger unit inside: this span ends it
            below.append((span, lo, hi))
            above.append((span, hi, hi))
            lo = hi
        else:
            below.append((span, lo, lo_aligned))
            above.append((span, hi_aligned, hi))
            lo, hi = lo_aligned, hi_aligned
    below.append((SPANS_S[-1], lo, hi))
    buckets = tuple((span, _moment(first), _moment(end)) for span, first, end in below + above[::-1])
    return Pieces(buckets, ((lower, _moment(a)), (_moment(b), upper)))


_QUERY = text(
    "SELECT symbol, SUM(conversations) AS n, SUM(followups) AS f,"
    " MIN(earliest) AS earliest, MAX(latest) AS latest FROM range_buckets WHERE "
    + " OR ".join(f"(span_s = :span{i} AND start >= :from{i} AND start < :to{i})" for i in range(len(_SHAPE)))
    + " GROUP BY symbol"
    " UNION ALL "
    "SELECT symbol, SUM(kind = 'initial'), SUM(kind = 'followup'),"
    " MIN(IF(kind = 'initial', conversation_ts, NULL)), MAX(IF(kind = 'initial', conversation_ts, NULL))"
    " FROM events WHERE (conversation_ts >= :edge_from0 AND conversation_ts < :edge_to0)"
    " OR (conversation_ts >= :edge_from1 AND conversation_ts <= :edge_to1)"
    " GROUP BY symbol"
    # The readiness row: absent while the buckets are being (re)built (rebuild()).
    " UNION ALL SELECT NULL, 0, 0, NULL, NULL FROM migrations WHERE name = 'range_buckets'"
)


class NotReady(Exception):
    """The buckets are being built (a first upgrade, or `ingest rebuild`): no answer yet."""


def summarize(connection, lower, upper):
    """The range dashboard for [lower, upper]: one row per symbol with conversations."""
    pieces = window_pieces(lower, upper)
    if pieces is None:
        return []
    params = {}
    for i, (span, first, end) in enumerate(pieces.buckets):
        params.update({f"span{i}": span, f"from{i}": first, f"to{i}": end})
    for i, (first, end) in enumerate(pieces.edges):
        params.update({f"edge_from{i}": first, f"edge_to{i}": end})
    totals, ready = {}, False
    for symbol, n, f, earliest, latest in connection.execute(_QUERY, params):
        if symbol is None:
            ready = True
            continue
        total = totals.setdefault(symbol, [0, 0, None, None])
        total[0] += int(n or 0)
        total[1] += int(f or 0)
        if earliest is not None and (total[2] is None or earliest < total[2]):
            total[2] = earliest
        if latest is not None and (total[3] is None or latest > total[3]):
            total[3] = latest
    if not ready:
        raise NotReady("the range dashboard's buckets are being built; retry shortly")
    return [
        {"count": n, "symbol": symbol, "earliest": timestamps.format_datetime(earliest),
         "latest": timestamps.format_datetime(latest), "followups": f}
        for symbol, (n, f, earliest, latest) in sorted(totals.items()) if n
    ]


# --- building them from og.events ----------------------------------------------------

_FILL_SECONDS = (
    "INSERT INTO range_buckets (span_s, start, symbol, conversations, followups, earliest, latest)"
    " SELECT 1, DATE_FORMAT(conversation_ts, '%%Y-%%m-%%d %%H:%%i:%%s'), symbol,"
    " SUM(kind = 'initial'), SUM(kind = 'followup'),"
    " MIN(IF(kind = 'initial', conversation_ts, NULL)), MAX(IF(kind = 'initial', conversation_ts, NULL))"
    " FROM events WHERE conversation_ts >= %s AND conversation_ts < %s GROUP BY 2, symbol")
_ROLL_UP = (
    "INSERT INTO range_buckets (span_s, start, symbol, conversations, followups, earliest, latest)"
    " SELECT {span}, DATE_FORMAT(start, '{start}'), symbol, SUM(conversations), SUM(followups),"
    " MIN(earliest), MAX(latest) FROM range_buckets AS finer"
    " WHERE span_s = {finer} AND start >= %s AND start < %s GROUP BY 2, symbol")
_ROLL_UPS = [_ROLL_UP.format(span=span, finer=finer, start=start) for span, finer, start in (
    (60, 1, "%%Y-%%m-%%d %%H:%%i:00"), (3600, 60, "%%Y-%%m-%%d %%H:00:00"),
    (86400, 3600, "%%Y-%%m-%%d 00:00:00"))]
_LOCKS = ("LOCK TABLES events READ, range_buckets WRITE, range_buckets AS finer READ,"
          " migrations WRITE")


def rebuild(engine):
    """Recompute every bucket from og.events; returns the number of days with events.

    Exact with ingest workers running: the tables are locked for the duration, so a
    worker's batch lands wholly before (and is read here) or wholly after (and adds
    to the rebuilt buckets). Readiness is withdrawn first and restored last, so an
    interrupted rebuild leaves the dashboard answering 503, never a partial count,
    until the next rebuild (which every ingest worker start runs when it is missing).
    Work is done a UTC day of events at a time, so its memory is bounded by a day.
    """
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        cursor.execute("SET SESSION autocommit = 0")
        cursor.execute(_LOCKS)
        try:
            cursor.execute("DELETE FROM migrations WHERE name = 'range_buckets'")
            connection.commit()
            cursor.execute("TRUNCATE TABLE range_buckets")
            days = 0
            cursor.execute("SELECT MIN(conversation_ts) FROM events")
            first = cursor.fetchone()[0]
            while first is not None:
                day = datetime(first.year, first.month, first.day)
                following = day + timedelta(days=1)
                cursor.execute(_FILL_SECONDS, (day, following))
                for statement in _ROLL_UPS:
                    cursor.execute(statement, (day, following))
                connection.commit()
                days += 1
                cursor.execute("SELECT MIN(conversation_ts) FROM events WHERE conversation_ts >= %s",
                               (following,))
                first = cursor.fetchone()[0]
            cursor.execute("INSERT INTO migrations (name, applied_at) VALUES"
                           " ('range_buckets', UTC_TIMESTAMP(6))")
            connection.commit()
            return days
        finally:
            connection.rollback()
            cursor.execute("UNLOCK TABLES")
    finally:
        connection.close()


BUILD_LOCK = "og.range_buckets.build"
BUILD_LOCK_WAIT_S = 600
"""How long a starting worker waits for another one's build (a 10M-event store: ~1 min)."""


def is_built(connection):
    return connection.exec_driver_sql(
        "SELECT 1 FROM migrations WHERE name = 'range_buckets'").first() is not None


def ensure_built(engine):
    """Build the buckets if they are not complete: the upgrade of a store made before
    them, or the end of an interrupted rebuild. Returns True if it built them.

    A named lock makes concurrent callers (several workers starting) build once.
    """
    with engine.connect() as connection:
        if _built_now(connection):
            return False
        got = connection.exec_driver_sql(
            "SELECT GET_LOCK(%s, %s)", (BUILD_LOCK, BUILD_LOCK_WAIT_S)).scalar()
        if got != 1:
            raise TimeoutError(f"waited {BUILD_LOCK_WAIT_S} s for another process's bucket build")
        try:
            if _built_now(connection):  # another process built them while we waited
                return False
            rebuild(engine)
            return True
        finally:
            connection.exec_driver_sql("SELECT RELEASE_LOCK(%s)", (BUILD_LOCK,))


def _built_now(connection):
    # Ends its transaction: an open one would hold a metadata lock on og.migrations,
    # which rebuild()'s LOCK TABLES (on another connection) would wait for forever.
    try:
        return is_built(connection)
    finally:
        connection.rollback()
