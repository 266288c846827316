"""The range dashboard and its buckets computed by brute force from og.events, with SQL
of the tests' own (never the product's queries), to compare the product with."""
import sqlalchemy

from core import timestamps

SPANS_S = (1, 60, 3600, 86400)
_FLOOR = {1: "%Y-%m-%d %H:%i:%s", 60: "%Y-%m-%d %H:%i:00", 3600: "%Y-%m-%d %H:00:00",
          86400: "%Y-%m-%d 00:00:00"}


def brute_range(engine, lower, upper):
    """GROUP BY over og.events: the range dashboard of docs/API.md for [lower, upper]."""
    query = sqlalchemy.text(
        "SELECT symbol, SUM(kind = 'initial') AS n, SUM(kind = 'followup') AS f,"
        " MIN(IF(kind = 'initial', conversation_ts, NULL)) AS earliest,"
        " MAX(IF(kind = 'initial', conversation_ts, NULL)) AS latest"
        " FROM events WHERE conversation_ts BETWEEN :lower AND :upper"
        " GROUP BY symbol ORDER BY symbol")
    with engine.connect() as connection:
        rows = connection.execute(query, {"lower": lower, "upper": upper}).fetchall()
    return [{"count": int(n), "symbol": symbol, "earliest": timestamps.format_datetime(earliest),
             "latest": timestamps.format_datetime(latest), "followups": int(f)}
            for symbol, n, f, earliest, latest in rows if n]


def expected_buckets(engine):
    """{(span_s, start text, symbol): (conversations, followups, earliest, latest)} from og.events."""
    expected = {}
    with engine.connect() as connection:
        for span in SPANS_S:
            rows = connection.execute(sqlalchemy.text(
                f"SELECT DATE_FORMAT(conversation_ts, '{_FLOOR[span]}'), symbol,"
                " SUM(kind = 'initial'), SUM(kind = 'followup'),"
                " MIN(IF(kind = 'initial', conversation_ts, NULL)),"
                " MAX(IF(kind = 'initial', conversation_ts, NULL))"
                " FROM events GROUP BY 1, symbol"))
            for start, symbol, n, f, earliest, latest in rows:
                expected[(span, start, symbol)] = (int(n), int(f), earliest, latest)
    return expected


def stored_buckets(engine):
    with engine.connect() as connection:
        rows = connection.execute(sqlalchemy.text(
            "SELECT span_s, DATE_FORMAT(start, '%Y-%m-%d %H:%i:%s'), symbol, conversations,"
            " followups, earliest, latest FROM range_buckets"))
        return {(span, start, symbol): (int(n), int(f), earliest, latest)
                for span, start, symbol, n, f, earliest, latest in rows}


def assert_buckets_exact(engine):
    """og.range_buckets equals what og.events says, bucket for bucket."""
    expected, stored = expected_buckets(engine), stored_buckets(engine)
    wrong = {key: (stored.get(key), want) for key, want in expected.items() if stored.get(key) != want}
    extra = {key: value for key, value in stored.items() if key not in expected}
    assert not wrong and not extra, (
        f"{len(wrong)} buckets differ from og.events (stored, expected): {sorted(wrong.items())[:5]}; "
        f"{len(extra)} buckets with no events: {sorted(extra.items())[:5]}")
    return len(stored)
