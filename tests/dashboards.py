"""Expected dashboards, computed by the tests from what they stored, independently of
any backend's queries."""
from datetime import datetime, time

TS_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


def parse_ts(text):
    return datetime.strptime(text, TS_FORMAT)


def bound(text, upper):
    """A range bound as docs/API.md section 2 defines it (date-only: start or end of the day)."""
    text = text.replace("T", " ")
    if len(text) == 10:
        day = datetime.strptime(text, "%Y-%m-%d")
        return datetime.combine(day, time(23, 59, 59, 999999) if upper else time(0))
    return datetime.strptime(text, TS_FORMAT if "." in text else "%Y-%m-%d %H:%M:%S")


def summaries(conversations):
    """conversations: iterable of (symbol, ts string, followed up?) -> dashboard rows by symbol."""
    rows = {}
    for symbol, ts, followed in conversations:
        row = rows.setdefault(symbol, {"count": 0, "symbol": symbol, "earliest": ts,
                                       "latest": ts, "followups": 0})
        row["count"] += 1
        row["followups"] += int(followed)
        # Fixed-width strings: compare them as the moments they name.
        row["earliest"] = min(row["earliest"], ts, key=parse_ts)
        row["latest"] = max(row["latest"], ts, key=parse_ts)
    return [rows[symbol] for symbol in sorted(rows)]


def symbol_dashboard(conversations, symbol):
    for row in summaries(c for c in conversations if c[0] == symbol):
        return row
    return {"count": 0, "symbol": symbol, "earliest": None, "latest": None, "followups": 0}


def range_dashboard(conversations, lower, upper):
    """The rows for conversations whose /initial time t has lower <= t <= upper (datetimes)."""
    return summaries(c for c in conversations if lower <= parse_ts(c[1]) <= upper)
